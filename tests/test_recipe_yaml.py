"""Recipes parse strictly: a key given twice is refused naming the key and both lines, at any depth and in JSON."""

from __future__ import annotations

import pytest

from clip_lora.arguments import parse_args
from clip_lora.errors import ArgumentError


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
