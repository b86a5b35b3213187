"""clip-lora compare on runs from elsewhere: older, partial, edited or foreign run files (run_config.json,
all_results.json) are read through clip_lora/run_files.py, so the answer is the report (exit 0) or one `error:` line
naming the file and the key (exit 2), never a traceback. Runs are written by hand here (no training): the files
compare reads, in the shape a finished run writes them.

Run: python -m pytest tests/test_compare_inputs.py -q
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clip_lora import artifacts, run_files
from clip_lora.cli import run as run_verb
from clip_lora.errors import RunError
from testing_utils import user_error

CONFIG = {
    "seed": 1,
    "learning_rate": 0.005,
    "model_name_or_path": "tiny",
    "provenance": {
        "versions": {"torch": "2.11.0", "transformers": "5.17.0"},
        "code": {"clip_lora": "0.1", "git_commit": "0123456789abcdef", "git_dirty": False},
        "batch": {"processes": 1, "global_batch_size": 16},
        "data": {
            "splits": {"train": {"images": 4, "sha256": "aa"}, "val": {"images": 2, "sha256": "bb"}},
            "images": 6,
            "files_sha256": "c" * 64,
        },
    },
}
RESULTS = {"zero_shot_accuracy": 0.5, "eval_accuracy": 1.0, "dev_accuracy": 0.75, "eval_ece": 0.1}
PREDICTIONS = "image,label,prediction,cat,dog\nval/cat/1.png,cat,cat\nval/dog/2.png,dog,cat\n"


def write_run(folder: Path, config=CONFIG, results=RESULTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, record in ((artifacts.RUN_CONFIG, config), (artifacts.ALL_RESULTS, results)):
        (folder / name).write_text(record if isinstance(record, str) else json.dumps(record))
    (folder / artifacts.PREDICTIONS).write_text(PREDICTIONS)
    return folder


def without(record: dict, dotted: str) -> dict:
    out = copy.deepcopy(record)
    *parents, last = dotted.split(".")
    holder = out
    for part in parents:
        holder = holder[part]
    del holder[last]
    return out


def replaced(record: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(record)
    *parents, last = dotted.split(".")
    holder = out
    for part in parents:
        holder = holder[part]
    holder[last] = value
    return out


def test_two_well_formed_runs_are_compared(tmp_path, capsys):
    a, b = write_run(tmp_path / "a"), write_run(tmp_path / "b", replaced(CONFIG, "seed", 2))
    assert run_verb("compare", [str(a), str(b)]) == 0
    assert "seed  1 -> 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "config, results, expected",
    [
        (
            without(CONFIG, "provenance.data.splits"),
            RESULTS,
            "run_config.json: provenance.data has no 'splits' (expected an object {...})",
        ),
        ([CONFIG], RESULTS, "run_config.json holds a list [...], expected a JSON object {...}"),
        (CONFIG, [RESULTS], "all_results.json holds a list [...], expected a JSON object {...}"),
        (CONFIG, "", "all_results.json is not valid JSON (Expecting value: line 1 column 1"),
        (json.dumps(CONFIG)[:40], RESULTS, "run_config.json is not valid JSON ("),
        (
            replaced(CONFIG, "provenance", None),
            RESULTS,
            "run_config.json: 'provenance' is null, expected an object",
        ),
        (
            replaced(CONFIG, "provenance.data", [1]),
            RESULTS,
            "'provenance.data' is a list [...], expected an object",
        ),
        (
            replaced(CONFIG, "provenance.data.files_sha256", 7),
            RESULTS,
            "provenance.data: 'files_sha256' is a number, expected a string",
        ),
        (
            replaced(CONFIG, "provenance.code.git_commit", ["abc"]),
            RESULTS,
            "'provenance.code.git_commit' is a list [...], expected a string or null",
        ),
        (
            CONFIG,
            replaced(RESULTS, "eval_accuracy", "0.9"),
            "'eval_accuracy' is a string, expected a number or null",
        ),
        (
            CONFIG,
            replaced(RESULTS, "eval_ece", True),
            "'eval_ece' is true or false, expected a number or null",
        ),
    ],
    ids=[
        "no splits",
        "config list",
        "results list",
        "results empty",
        "config cut off",
        "provenance null",
        "data list",
        "sha number",
        "commit list",
        "accuracy string",
        "ece bool",
    ],
)
def test_a_malformed_run_file_is_one_line_naming_the_file_and_key(
    tmp_path, capsys, config, results, expected
):
    good, bad = write_run(tmp_path / "good"), write_run(tmp_path / "bad", config, results)
    line = user_error([str(good), str(bad)], capsys, verb="compare")
    assert line.startswith(f"error: {bad}{'/'}") and expected in line, line
    assert "compare needs two complete runs" in line or "valid JSON" in line, line


def test_an_older_run_without_provenance_is_compared_as_unknown_data(tmp_path, capsys):
    old = write_run(tmp_path / "old", without(CONFIG, "provenance"))
    assert run_verb("compare", [str(write_run(tmp_path / "new")), str(old)]) == 0
    assert "data: unknown" in capsys.readouterr().out


def test_a_file_or_a_folder_in_the_wrong_place_is_named_as_such(tmp_path, capsys):
    good, file = write_run(tmp_path / "good"), tmp_path / "run.json"
    file.write_text("{}")
    line = user_error([str(good), str(file)], capsys, verb="compare")
    assert line == f"error: run folder {file} is a file; pass the --output_dir (a folder) of a clip-lora run."
    odd = write_run(tmp_path / "odd")
    (odd / artifacts.RUN_CONFIG).unlink()
    (odd / artifacts.RUN_CONFIG).mkdir()
    line = user_error([str(good), str(odd)], capsys, verb="compare")
    assert line.startswith(f"error: {odd / artifacts.RUN_CONFIG} is a folder, not a JSON file"), line


def test_the_reader_checks_dotted_keys_and_names_what_it_expected(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": {"b": 1}, "n": None}))
    assert run_files.read_json_object(path, {"a.b": run_files.NUMBER}, {"a.c": str, "z.y": str})["n"] is None
    with pytest.raises(RunError, match=r"x.json has no 'a.c' \(expected a string\)"):
        run_files.read_json_object(path, {"a.c": str})
    with pytest.raises(RunError, match=r"x.json: 'n' is null, expected an object holding 'm'"):
        run_files.read_json_object(path, optional={"n.m": str})
    with pytest.raises(RunError, match=r"'a.b' is a number, expected a list of strings"):
        run_files.read_json_object(path, {"a.b": run_files.STRING_LIST})
    with pytest.raises(RunError, match=r"does not exist"):
        run_files.read_json_object(tmp_path / "none.json")


JSON_LEAVES = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=4)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
CONFIG_KEYS = [
    "seed",
    "provenance",
    "provenance.data",
    "provenance.data.splits",
    "provenance.data.splits.val",
    "provenance.data.files_sha256",
    "provenance.data.images",
    "provenance.versions",
    "provenance.versions.torch",
    "provenance.code",
    "provenance.code.git_commit",
]
RESULT_KEYS = list(RESULTS)
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["config", "results"]),
        st.integers(0, 100),
        st.sampled_from(["delete", "replace", "whole file"]),
        JSON_VALUES,
    ),
    min_size=1,
    max_size=3,
)


def _edited(config: dict, results: dict, edits) -> tuple:
    config, results = copy.deepcopy(config), copy.deepcopy(results)
    for which, pick, how, value in edits:
        record, keys = (config, CONFIG_KEYS) if which == "config" else (results, RESULT_KEYS)
        if how == "whole file" or not isinstance(record, dict):
            record = value
        else:
            dotted = keys[pick % len(keys)]
            # An earlier edit took its parent away: the file stays as it is.
            with contextlib.suppress(KeyError, TypeError):
                record = without(record, dotted) if how == "delete" else replaced(record, dotted, value)
        config, results = (record, results) if which == "config" else (config, record)
    return config, results


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_compare_over_generated_malformed_run_files_answers_or_says_one_line(edits, capsys):
    config, results = _edited(CONFIG, RESULTS, edits)
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = write_run(Path(tmp) / "good"), write_run(Path(tmp) / "bad", config, results)
        capsys.readouterr()
        code = run_verb("compare", [str(good), str(bad)])
        out, err = capsys.readouterr()
    assert "Traceback" not in err and code in (0, 2), (code, err[-2000:])
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    if code == 2:
        assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err[-2000:]
    else:
        assert not errors and "McNemar" in out
