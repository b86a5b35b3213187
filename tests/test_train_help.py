"""`clip-lora train --help` as a person reads it (clip_lora/train_help.py): the project's flags first, grouped by
what a user changes, Trainer's others behind --help-all; eval's own view; over ALL flags, every default the help
states is the parsed default, and every boolean's help says what true does.

Run: python -m pytest tests/test_train_help.py -q
"""

from __future__ import annotations

import dataclasses
import enum
import re

import pytest

from clip_lora import arguments, cli, flag_schema, train_help
from clip_lora.resources import RECIPES_DIR, names

TITLES = ["data:", "model and LoRA:", "batch and schedule:", "evaluation and reports:", "Hub and tracking:"]


def _help(capsys, *argv: str) -> str:
    """The help the command prints: from the packaged description, or (an install it does not fit) argparse's own
    --help after the full parse, which exits with status 0."""
    capsys.readouterr()
    try:
        assert cli.main(list(argv)) == 0
    except SystemExit as done:
        assert done.code == 0
    return capsys.readouterr().out


def entries(text: str) -> dict[str, str]:
    """flag -> its help text, from argparse's layout (an entry starts at `  -`, continues further indented)."""
    found, flag = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):
            flag, _, rest = line.strip().partition("  ")
            flag = flag.split(",")[0].split()[0]
            found[flag] = rest.strip()
        elif flag and line.startswith("    "):
            joiner = "" if found[flag].endswith("-") else " "  # argparse breaks lines after a hyphen too
            found[flag] = (found[flag] + joiner + line.strip()).strip()
        else:
            flag = None
    return found


def project_fields() -> list[str]:
    """Every flag this project defines or redefines (the three dataclasses, and the Trainer fields it overrides)."""
    own = [f.name for cls in arguments.ARGUMENT_CLASSES[:3] for f in dataclasses.fields(cls)]
    fields = {f.name: f for f in dataclasses.fields(arguments.ClipLoraTrainingArguments)}
    pinned = {n for n, f in fields.items() if len(f.metadata.get("choices", ())) == 1}  # one allowed value
    return own + [n for n in arguments.ClipLoraTrainingArguments.__annotations__ if n not in pinned]


def test_train_help_lists_the_projects_flags_first_in_groups_and_trainers_behind_help_all(capsys):
    text = _help(capsys, "train", "--help")
    lines = text.splitlines()
    assert lines[0] == "usage: clip-lora train [RECIPE | --config FILE.yaml] [--flag value ...]"
    assert lines[1].split() == ["RECIPE:", *" | ".join(names(RECIPES_DIR)).split(), "|", "FILE.yaml"]
    assert f"a packaged recipe ({', '.join(names(RECIPES_DIR))})" in " ".join(lines)
    assert [line for line in lines if line in TITLES] == TITLES  # in this order, each once
    shown = entries(text)
    assert [f"--{name}" for name in project_fields() if f"--{name}" not in shown] == []
    batch = lines[lines.index("batch and schedule:") + 1]
    assert batch.strip().startswith("--global_batch_size ")  # first of its group, not last of all
    assert "--adam_beta1" not in shown and "clip-lora train --help-all" in " ".join(text.split())
    assert len(lines) < 250

    every = _help(capsys, "train", "--help-all")
    assert train_help.TRAINER_TITLE + ":" in every.splitlines()
    all_entries = entries(every)
    assert "--adam_beta1" in all_entries and set(shown) - {"--help-all"} <= set(all_entries)
    parser = arguments.build_parser()
    flags = {action.option_strings[0] for action in parser._actions if action.option_strings}
    assert flags - set(all_entries) == {"--help-all"}  # every flag of the parser (--help-all: this help)


def test_eval_help_shows_only_what_eval_uses(capsys):
    text = _help(capsys, "eval", "--help")
    assert text.startswith("usage: clip-lora eval [RECIPE | --config FILE.yaml]")
    shown = entries(text)
    for flag in (
        "--adapter_name_or_path",
        "--model_name_or_path",
        "--data_dir",
        "--per_device_eval_batch_size",
    ):
        assert flag in shown, flag
    for flag in (
        "--lora_r",
        "--learning_rate",
        "--num_train_epochs",
        "--resume_from_checkpoint",
        "--do_train",
    ):
        assert flag not in shown, flag


def _as_shown(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none"  # report_to: none is parsed as []
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


NEGATIVE_START = re.compile(r"^(off|no|not|don't|do not|disable|false)\b", re.IGNORECASE)


def test_every_default_shown_is_the_parsed_default_and_every_boolean_says_what_true_does(capsys):
    text = _help(capsys, "train", "--help-all")
    parsed = {}
    for group in arguments.parse_args([]):
        parsed.update(vars(group))
    defaults_shown = 0
    for flag, help_text in entries(text).items():
        stated = re.search(r"\(default: ([^()]*)\)$", help_text)
        if stated and flag.startswith("--") and flag[2:] in parsed:
            defaults_shown += 1
            assert stated.group(1) == _as_shown(parsed[flag[2:]]), (flag, help_text)
    assert defaults_shown > 80
    shown = entries(text)
    parser = arguments.build_parser()
    booleans = [
        a for a in parser._actions if a.const is True and a.nargs == "?"
    ]  # HfArgumentParser's --flag [bool]
    assert len(booleans) > 30
    for action in booleans:
        flag = action.option_strings[0]
        assert shown[flag] and not NEGATIVE_START.match(shown[flag]), (flag, shown[flag])
        if f"--no_{action.dest}" in shown:
            assert shown[f"--no_{action.dest}"] == f"Same as --{action.dest} false.", action.dest
    assert shown["--no_download"] == "Same as --download false."
    assert (
        "(default:" not in shown["--data_dir"] and "~/.cache/clip_lora/<dataset_name>" in shown["--data_dir"]
    )


def test_without_a_packaged_description_the_full_parse_prints_the_same_help(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", flag_schema.HELP_COLUMNS)
    if flag_schema.load() is None:
        pytest.skip("no description of the parser fits this install: there is no quick path to compare")
    quick, quick_eval = _help(capsys, "train", "--help"), _help(capsys, "eval", "--help")
    monkeypatch.setattr(flag_schema, "SCHEMA_FILE", tmp_path / "absent.json")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert flag_schema.load() is None
    with pytest.raises(SystemExit) as done:  # argparse's own --help, after the heavy imports: exit status 0
        cli.main(["train", "--help"])
    assert done.value.code == 0 and capsys.readouterr().out == quick
    assert _help(capsys, "eval", "--help") == quick_eval
    with pytest.raises(SystemExit):
        arguments.parse_args(["--help-all"])
    assert train_help.TRAINER_TITLE in capsys.readouterr().out
