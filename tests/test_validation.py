"""validation: every flag is judged right after parsing, before any data or model, by the rule next to its definition.

The cases run through the console entry (one `error:` line, exit 2, no traceback) or parse_args. None of them needs
data: the default --dataset_name imagenette without data would fail on the download, so an error about the flag
shows that the validation ran first.

Run: python -m pytest tests/test_validation.py -q
"""

from __future__ import annotations

import dataclasses

import pytest

from clip_lora import validation
from clip_lora.arguments import ARGUMENT_CLASSES, parse_args
from clip_lora.errors import ArgumentError
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS, smoke_argv, user_error

pytestmark = pytest.mark.usefixtures("image_check_cache")


# ---------------------------------------------------------------- values: ranges, finiteness, names, templates
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--metric_for_best_model", "acuracy"],
            "error: --metric_for_best_model 'acuracy' is not a metric the evaluation reports; "
            "use one of accuracy, macro_f1, loss.",
        ),
        (
            ["--per_device_train_batch_size", "0"],
            "error: --per_device_train_batch_size 0 must be a positive integer, e.g. 32.",
        ),
        (["--max_train_samples", "0"], "error: --max_train_samples 0 must be a positive integer, e.g. 64."),
        (["--learning_rate", "nan"], "error: --learning_rate nan must be a finite number; e.g. 0.0001."),
        (["--learning_rate", "inf"], "error: --learning_rate inf must be a finite number; e.g. 0.0001."),
        (["--learning_rate", "-0.1"], "error: --learning_rate -0.1 must be >= 0; e.g. 0.0001."),
        (
            ["--num_train_epochs", "0"],
            "error: --num_train_epochs 0.0 with --max_steps -1 trains nothing; pass a positive "
            "--num_train_epochs (or --max_steps), or --do_train false to only evaluate.",
        ),
        (
            ["--prompt_template", "a {} photo of {x}"],
            "error: --prompt_template 'a {} photo of {x}' has a field {x}; only '{}' (the class name) is allowed; "
            "use e.g. 'a photo of a {}.'",
        ),
        (
            ["--prompt_template", "a {} photo {"],
            "error: --prompt_template 'a {} photo {' has an unmatched '{' or '}' (write '{{' or '}}' for a "
            "literal brace); use e.g. 'a photo of a {}.'",
        ),
        (["--seed", "-1"], "error: --seed -1 must be in [0, 4294967295]; e.g. 42."),
        (
            ["--dataloader_num_workers", "100000"],
            "error: --dataloader_num_workers 100000 must be in [0, 256].",
        ),
        (["--max_grad_norm", "nan"], "error: --max_grad_norm nan must be a finite number; e.g. 1.0."),
        (["--lora_alpha=-inf"], "error: --lora_alpha -inf must be a finite number; e.g. 32."),
        (
            ["--lora_target_modules", "q_proj,(v"],
            "error: --lora_target_modules 'q_proj,(v' must be comma-separated module names like q_proj,v_proj; "
            "e.g. q_proj,k_proj,v_proj,out_proj.",
        ),
        (["--output_dir", " "], "error: --output_dir ' ' must not be empty; e.g. runs/clip-lora-imagenette."),
        (
            ["--prompt_template", "a photo of a \udcff{}"],
            "error: --prompt_template 'a photo of a \\udcff{}' contains bytes that are not UTF-8 text; pass "
            "UTF-8 (rename the file or folder if it is a path).",
        ),
        (
            ["--remove_unused_columns", "true"],
            "error: --remove_unused_columns true is not supported here; leave it at its default.",
        ),
        (["--wise_alphas", "0,inf"], "error: --wise_alphas '0,inf' must be numbers, e.g. 0,0.25,0.5,0.75,1"),
    ],
    ids=lambda v: v[0].split("=")[0] if isinstance(v, list) else "",
)
def test_bad_value_is_one_line_before_any_data(argv, expected, tmp_path, capsys):
    assert user_error(["--output_dir", str(tmp_path / "out"), *argv], capsys) == expected
    assert not (tmp_path / "out").exists()


def test_library_error_names_the_flags(tmp_path, capsys):
    line = user_error(["--eval_strategy", "steps", "--output_dir", str(tmp_path / "out")], capsys)
    assert line.startswith("error: --load_best_model_at_end, --save_strategy: ")
    assert "requires the save and eval strategy to match" in line
    assert line.endswith("see `clip-lora train --help`.")


def test_zero_learning_rate_and_eval_only_zero_epochs_are_allowed():
    *_, train = parse_args(["--learning_rate", "0"])
    assert train.learning_rate == 0
    *_, train = parse_args(["--num_train_epochs", "0", "--do_train", "false"])
    assert train.num_train_epochs == 0 and not train.do_train


def test_a_loss_metric_selects_the_lowest():
    assert parse_args(["--metric_for_best_model", "loss"])[3].greater_is_better is False
    assert parse_args([])[3].greater_is_better is True


def _violation(rules: dict, default):
    """A value that breaks `rules`, as a command-line string (None when the rules only restrict strings)."""
    if "min" in rules:
        return str(rules["min"] - 1)
    if "gt" in rules:
        return str(rules["gt"])
    if "max" in rules:
        return str(rules["max"] + 1)
    if "lt" in rules:
        return str(rules["lt"])
    if "choices" in rules and isinstance(default, bool):
        return str(not default).lower()
    if "choices" in rules:
        return "not-a-choice"
    if "nonempty" in rules:
        return ""
    if "template" in rules:
        return "no slot"
    if "names" in rules:
        return "a b"
    return None


def test_every_rule_in_the_metadata_and_the_table_is_enforced():
    """The mechanism: for each field that carries a rule, a value breaking it is one ArgumentError naming the flag."""
    checked = []
    for cls in ARGUMENT_CLASSES:
        for field in dataclasses.fields(cls):
            rules = validation.rules_for(field, validation.TRAINING_RULES)
            default = field.default if field.default is not dataclasses.MISSING else None
            bad = _violation(rules, default)
            if bad is None:
                continue
            with pytest.raises(ArgumentError, match=rf"^--{field.name} "):
                parse_args([f"--{field.name}", bad])
            checked.append(field.name)
    assert len(checked) >= 35 and {"lora_r", "learning_rate", "warmup_steps", "report_to"} <= set(checked)


def test_every_float_flag_refuses_nan():
    floats = [
        f.name
        for cls in ARGUMENT_CLASSES
        for f in dataclasses.fields(cls)
        if f.init and isinstance(f.default, float) and not isinstance(f.default, bool)
    ]
    assert len(floats) >= 10
    for name in floats:
        with pytest.raises(ArgumentError, match=rf"^--{name} nan must be a finite number"):
            parse_args([f"--{name}", "nan"])


# ---------------------------------------------------------------- files: encoding, shape
LATIN1 = "caf\xe9 {}\n".encode("latin-1")


def test_latin1_recipe(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(b"prompt_template: " + LATIN1)
    assert user_error([str(recipe)], capsys) == (
        f"error: recipe {recipe} is not UTF-8 text (byte 0xe9 at offset 20); save it as UTF-8."
    )


def test_latin1_template_file(tmp_path, capsys):
    templates = tmp_path / "t.txt"
    templates.write_bytes(LATIN1)
    line = user_error(["--prompt_templates", str(templates), "--output_dir", str(tmp_path / "o")], capsys)
    assert line == (
        f"error: --prompt_templates {templates} is not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8"
    )


def test_template_file_with_a_named_field(tmp_path, capsys):
    templates = tmp_path / "t.txt"
    templates.write_text("a photo of a {}.\na {name} photo\n")
    line = user_error(["--prompt_templates", str(templates), "--output_dir", str(tmp_path / "o")], capsys)
    assert (
        line == "error: template 'a {name} photo' has a field {name}; only '{}' (the class name) is allowed"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"a": "caf\xe9"}', "is not UTF-8 text (byte 0xe9 at offset 10); save it as UTF-8."),
        (b'{"a": ', "is not valid JSON (Expecting value: line 1 column 7 (char 6)); fix the file."),
        (b'["a"]', "must hold a JSON object {folder: class name} with string names."),
    ],
    ids=["latin1", "invalid_json", "a_list"],
)
def test_class_names_file(content, expected, tmp_path, capsys):
    names = tmp_path / "names.json"
    names.write_bytes(content)
    line = user_error(["--class_names_file", str(names), "--output_dir", str(tmp_path / "o")], capsys)
    assert line == f"error: --class_names_file {names} {expected}"


def test_data_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    line = user_error(["--data_dir", str(tmp_path / "f"), "--output_dir", str(tmp_path / "o")], capsys)
    assert line == f"error: --data_dir {tmp_path / 'f'} is a file; pass a folder."


# ---------------------------------------------------------------- judged against the loaded model, before zero-shot
def test_lora_rank_above_the_layer_rank_is_refused_before_zero_shot(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    import train_clip_lora

    data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=2, val_per_class=1, size=8)
    monkeypatch.setattr(train_clip_lora, "evaluate_split", lambda *a, **k: pytest.fail("zero-shot ran"))
    line = user_error(smoke_argv(tiny_model_dir, data, tmp_path / "out", "--lora_r", "100000"), capsys)
    assert line.startswith("error: --lora_r 100000 exceeds the rank of the adapted layers (")
    limit = int(line.split("(")[1].split(")")[0])
    assert 1 <= limit < 100000 and line.endswith(f"use at most {limit}, e.g. 16.")


def test_metric_names_come_from_compute_metrics():
    names = validation.metric_names()
    assert names == ["accuracy", "macro_f1", "loss"]
