"""Answers at once: what only the file system decides (a wrong --data_dir, a finished or locked --output_dir, one
class folder, a missing adapter or model path, `compare` on a missing folder or a file, `clip-lora config`) is
answered with one `error:` line before torch or transformers is imported, and with the line the later step gives.

Run: python -m pytest tests/test_input_checks.py -q
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clip_lora import artifacts, input_checks, sources
from clip_lora.data import load_splits
from clip_lora.errors import ArgumentError, DataError
from clip_lora.resources import RECIPES_DIR
from testing_utils import ROOT, WNIDS

# Runs cli.main once per case in ONE fresh interpreter; reports, per case, the exit status, the stderr lines and
# whether torch or transformers had been imported by the time it answered.
RUNNER = """
import contextlib, io, json, os, sys
from clip_lora import cli
out = []
for cwd, argv in json.loads(sys.argv[1]):
    os.chdir(cwd)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(argv)
    out.append({"status": status, "stderr": err.getvalue().splitlines(),
                "heavy": [m for m in ("torch", "transformers", "datasets") if m in sys.modules]})
print(json.dumps(out))
"""


def run_fresh(cases: list[tuple[Path, list[str]]]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps([[str(cwd), argv] for cwd, argv in cases])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture()
def clone(tmp_path) -> Path:
    """A project folder after `make setup`: demo assets (two ImageNette class folders, a model folder), a finished
    run, a run folder whose lock is held, a one-class and a two-class image folder, a file."""
    for split in ("train", "val"):
        for wnid in WNIDS[:2]:
            (tmp_path / "runs/demo-assets/imagenette" / split / wnid).mkdir(parents=True)
        (tmp_path / "one_class" / split / "cat").mkdir(parents=True)
        for folder in ("cat", "kitten"):
            (tmp_path / "pets" / split / folder).mkdir(parents=True)
    (tmp_path / "runs/demo-assets/model").mkdir()
    for name in ("finished", "locked"):
        (tmp_path / "runs" / name).mkdir()
        artifacts.atomic_write_text(tmp_path / "runs" / name / artifacts.RUN_CONFIG, '{"do_train": true}')
    (tmp_path / "runs/finished" / artifacts.RUN_COMPLETE).write_text("finished\n")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    return tmp_path


def test_file_system_mistakes_are_one_line_before_torch_loads(clone, tmp_path_factory):
    fresh = tmp_path_factory.mktemp("fresh-clone")  # nothing made yet: no runs/
    (fresh / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    names = clone / "names.json"
    names.write_text(json.dumps({"cat": "cat", "kitten": "cat"}))
    cases = {
        "data_dir typo": (
            clone,
            ["train", "smoke", "--data_dir", "runs/demo-assets/imagenete"],
            "error: --data_dir runs/demo-assets/imagenete: no such folder (relative to {cwd}); "
            "did you mean runs/demo-assets/imagenette? (nothing is downloaded: --download false)",
        ),
        "finished": (
            clone,
            ["train", "smoke", "--output_dir", "runs/finished"],
            "error: runs/finished already holds a finished run; pass --overwrite_output_dir to replace it or "
            "choose another --output_dir.",
        ),
        "eval over a run": (
            clone,
            ["eval", "smoke", "--output_dir", "runs/finished"],
            "error: --output_dir runs/finished holds a finished training run; evaluating into it would replace",
        ),
        "locked": (
            clone,
            ["train", "smoke", "--output_dir", "runs/locked"],
            "error: --output_dir {cwd}/runs/locked is in use by another run (pid 1 on test); wait for it to end "
            "or choose another --output_dir.",
        ),
        "one class": (
            clone,
            ["train", "smoke", "--dataset_name", "one_class", "--output_dir", "runs/new"],
            "error: the class folders of one_class/train: only 1 class ('cat'); a classifier needs at least 2",
        ),
        "class names": (
            clone,
            ["train", "smoke", "--dataset_name", "pets", "--class_names_file", str(names)],
            f"error: --class_names_file {names} for the class folders of pets/train: 'cat' and 'kitten' map to "
            "the same class name 'cat'",
        ),
        "one control class": (
            clone,
            ["train", "smoke", "--control_eval_dir", "one_class/val", "--output_dir", "runs/new"],
            "error: --control_eval_dir one_class/val has 1 class folder(s); it needs two or more",
        ),
        "model": (
            clone,
            ["train", "smoke", "--model_name_or_path", "runs/demo-assets/modle"],
            "error: --model_name_or_path runs/demo-assets/modle: no such folder (relative to {cwd}); "
            "did you mean runs/demo-assets/model?",
        ),
        "demo not made": (
            fresh,
            ["predict", "--adapter_name_or_path", "runs/demo", "photo.jpg"],
            "error: --adapter_name_or_path runs/demo: no such folder (relative to {cwd}); run `make demo` first: "
            "it trains the demo run into runs/demo.",
        ),
        "app before the demo": (
            fresh,
            ["app", "runs/demo"],
            "error: clip-lora app runs/demo: no such run folder (relative to {cwd}); run `make demo` first",
        ),
        "app data typo": (
            clone,
            ["app", "runs/finished", "--data_dir", "runs/demo-assets/imagenete"],
            "error: --data_dir runs/demo-assets/imagenete: no such folder (relative to {cwd}); "
            "did you mean runs/demo-assets/imagenette?",
        ),
        "adapter typo": (
            clone,
            ["eval", "smoke", "--adapter_name_or_path", "runs/finishd", "--output_dir", "runs/new"],
            "error: --adapter_name_or_path runs/finishd: no such folder (relative to {cwd}); "
            "did you mean runs/finished?",
        ),
        "compare missing": (
            clone,
            ["compare", "runs/finishd", "runs/finished"],
            "error: run folder runs/finishd does not exist (pass the --output_dir of a clip-lora run); "
            "did you mean runs/finished?",
        ),
        "compare file": (
            clone,
            ["compare", "photo.jpg", "runs/finished"],
            "error: run folder photo.jpg is a file; pass the --output_dir (a folder) of a clip-lora run.",
        ),
    }
    lock = os.open(clone / "runs/locked" / artifacts.RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a run in progress (this test's process holds its lock)
        os.write(lock, b"pid 1 on test\n")
        answers = run_fresh([(cwd, argv) for cwd, argv, _ in cases.values()] + [(clone, ["config", "1gpu"])])
    finally:
        os.close(lock)
    *answers, config = answers
    for (name, (cwd, _, expected)), answer in zip(cases.items(), answers, strict=True):
        assert answer["status"] == 2, (name, answer)
        assert len(answer["stderr"]) == 1 and answer["stderr"][0].startswith(expected.format(cwd=cwd)), (
            name,
            answer,
        )
        assert "Hub" not in answer["stderr"][0] and "internet" not in answer["stderr"][0], (name, answer)
        assert answer["heavy"] == [], (name, answer)  # answered before torch / transformers / datasets
    assert config == {"status": 0, "stderr": [], "heavy": []}


def test_the_early_data_line_is_the_loaders_line(clone, monkeypatch):
    """The quick check and data.load_splits say the same about a missing --data_dir (one source of the text)."""
    monkeypatch.chdir(clone)
    args = dict(dataset_name="imagenette", data_dir="runs/demo-assets/imagenete", imagenette_size="full")
    with pytest.raises(DataError) as early:
        input_checks.check_data(type("DataArgs", (), {**args, "download": False, "class_names_file": None}))
    with pytest.raises(DataError) as late:
        load_splits(**args, download=False)
    assert str(early.value) == str(late.value) and "did you mean runs/demo-assets/imagenette?" in str(
        early.value
    )


def test_a_folder_that_cannot_be_read_is_named(clone, monkeypatch):
    """Root reads every folder, so the permission is faked: the check asks os.access, and says what to fix."""
    monkeypatch.chdir(clone)
    monkeypatch.setattr(sources.os, "access", lambda path, mode: Path(path).name != "model")
    with pytest.raises(ArgumentError, match=r"^--model_name_or_path runs/demo-assets/model cannot be read"):
        sources.resolve("runs/demo-assets/model", "--model_name_or_path")


def test_runs_folder_is_local_even_before_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sources.looks_local("runs/demo") and sources.looks_local("runs/x")
    assert not sources.looks_local("openai/clip-vit-base-patch16")
    # every packaged recipe writes under runs/: its output_dir is never taken for a Hub id
    for recipe in RECIPES_DIR.glob("*.yaml"):
        output_dir = yaml.safe_load(recipe.read_text()).get("output_dir")
        assert output_dir is None or Path(output_dir).parts[0] == sources.RUNS_DIR, recipe
