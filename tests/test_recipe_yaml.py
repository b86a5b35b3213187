"""Recipes parse strictly: a key given twice is refused naming the key and both lines, at any depth and in JSON."""

from __future__ import annotations

import pytest

from clip_lora.arguments import parse_args
from clip_lora.errors import ArgumentError
from testing_utils import user_error


@pytest.mark.parametrize(
    "text, key, first, second",
    [
        ("learning_rate: 0.5\nlearning_rate: 0.001\n", "learning_rate", 1, 2),
        ("lora_r: 4\nnum_train_epochs: 1\n\n# again\nlora_r: 8\n", "lora_r", 1, 5),
        ("seed: 1\nlora_target_modules:\n  - q_proj\nseed: 1\n", "seed", 1, 4),  # equal values too
    ],
)
def test_duplicate_yaml_keys_are_refused_naming_the_key_and_both_lines(tmp_path, text, key, first, second):
    recipe = tmp_path / "twice.yaml"
    recipe.write_text(text)
    with pytest.raises(ArgumentError) as err:
        parse_args([str(recipe)])
    assert str(err.value) == (
        f"recipe {recipe}: key {key!r} appears twice (lines {first} and {second}); keep one of them."
    )


def test_duplicate_json_keys_are_refused_naming_the_key(tmp_path):
    recipe = tmp_path / "twice.json"
    recipe.write_text('{"learning_rate": 0.5, "lora_r": 4, "learning_rate": 0.001}')
    with pytest.raises(ArgumentError) as err:
        parse_args([str(recipe)])
    assert str(err.value) == f"recipe {recipe}: key 'learning_rate' appears twice; keep one of them."


def test_distinct_keys_still_parse(tmp_path):
    recipe = tmp_path / "ok.yaml"
    recipe.write_text("learning_rate: 0.001\nlora_r: 8\n")
    _, _, lora, train = parse_args([str(recipe), "--output_dir", str(tmp_path / "out")])
    assert train.learning_rate == 0.001 and lora.lora_r == 8


# ---------------------------------------------------------------- --config FILE (trl's convention)
def test_config_flag_is_the_positional_recipe(tmp_path, image_root):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("learning_rate: 0.001\nlora_r: 8\nseed: 3\n")
    out = ["--output_dir", str(tmp_path / "out")]
    positional = parse_args([str(recipe), "--seed", "7", *out])
    for argv in (["--config", str(recipe), "--seed", "7", *out], ["--seed", "7", f"--config={recipe}", *out]):
        flagged = parse_args(argv)
        assert flagged[2] == positional[2] and flagged[3].to_dict() == positional[3].to_dict()
    assert (
        positional[2].lora_r == 8 and positional[3].seed == 7
    )  # the flag given wins over the recipe's value
    paths = [
        "--model_name_or_path",
        str(tmp_path),
        "--data_dir",
        str(image_root),
    ]  # the recipe's are make demo's (the data folder is checked as parsed: a real one)
    assert (
        parse_args(["--config", "smoke", *paths, *out])[3].learning_rate == 0.005
    )  # a packaged recipe by name


def test_config_through_the_command_is_read_and_overridden_by_flags(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("lora_r: 0\n")
    assert (
        user_error(["--config", str(recipe)], capsys)
        == "error: --lora_r 0 must be a positive integer, e.g. 16."
    )
    # --lora_r 4 overrides the recipe's 0: the first error is now the later --seed.
    assert user_error(["--config", str(recipe), "--lora_r", "4", "--seed", "-3"], capsys).startswith(
        "error: --seed -3 "
    )


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["smoke", "--config", "smoke"],
            "error: two recipes: 'smoke' and --config smoke; pass one (the first argument or --config).",
        ),
        (
            ["--config", "smoke", "--config", "x.yaml"],
            "error: --config given 2 times (smoke, x.yaml); pass one recipe.",
        ),
        (["--config"], "error: --config needs a recipe: a .yaml/.json file or one of "),
        (["--config", "smok"], "error: no recipe 'smok' (did you mean smoke?): pass a file path or one of "),
    ],
)
def test_config_mistakes_are_one_line(argv, line, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert user_error(argv, capsys).startswith(line)
