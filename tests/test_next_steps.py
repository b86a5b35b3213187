"""The last lines of a training run (what `make demo` ends with): where the results are, and the next commands
(predict, app, eval, compare), runnable as printed, with the venv activation they need when clip-lora is not on PATH.

Run: python -m pytest tests/test_next_steps.py -q
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from clip_lora import next_steps, verb_args
from clip_lora.cli import run as run_verb
from testing_utils import small_argv


def test_a_training_run_ends_with_its_results_and_runnable_next_commands(
    tiny_model_dir, image_root, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "PATH", "/usr/bin:/bin"
    )  # clip-lora not on PATH, as after `make demo` without activation
    assert run_verb("train", small_argv(tiny_model_dir, image_root, Path("runs/first"))) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    venv_bin = Path(sys.executable).parent
    assert lines[-6] == (
        "results: runs/first (README.md: the model card; all_results.json, predictions.csv and the plots)"
    )
    assert (
        lines[-5]
        == f"next (clip-lora is not on PATH: first `. {venv_bin}/activate`, or call {venv_bin}/clip-lora):"
    )
    commands = {line.split()[1]: shlex.split(line.split("  # ")[0]) for line in lines[-4:]}
    assert list(commands) == ["predict", "app", "eval", "compare"]
    assert commands["predict"][:4] == ["clip-lora", "predict", "--adapter_name_or_path", "runs/first"]
    assert commands["eval"][-2:] == ["--output_dir", "runs/first-eval"]
    # predict runs as printed (on the run's val images); eval, compare and app pass their checks of flags and paths
    assert run_verb("predict", commands["predict"][2:]) == 0
    assert str(image_root / "val") in capsys.readouterr().out  # classified the run's own val images
    eval_argv = commands["eval"][2:]
    assert verb_args.precheck("eval", eval_argv) is False  # accepted: nothing answered, no error
    assert "--model_name_or_path" in eval_argv and "--data_dir" in eval_argv
    compare_argv = [a if a != "OTHER_RUN" else "runs/first" for a in commands["compare"][2:]]
    assert verb_args.precheck("compare", compare_argv) is False
    assert verb_args.precheck("app", commands["app"][2:]) is False


@pytest.mark.parametrize("on_path", [True, False])
def test_the_activation_is_named_only_when_clip_lora_is_not_on_path(monkeypatch, on_path):
    venv_bin = Path(sys.executable).parent
    monkeypatch.chdir(venv_bin.parents[1])  # where `make demo` runs: the venv is .venv/ here
    path = os.pathsep.join([str(venv_bin)] * on_path + ["/usr/bin", "/bin"])
    monkeypatch.setenv("PATH", path)
    word, activation = next_steps.how_to_call()
    assert word == "clip-lora"
    if on_path:
        assert activation is None
    else:
        shown = f"{venv_bin.parent.name}/bin"
        assert activation == f"first `. {shown}/activate`, or call {shown}/clip-lora"
