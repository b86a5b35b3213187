"""clip-lora compare names how a training step was made (processes, per-device batch, accumulation, global batch,
precision) as each run recorded it, instead of blaming the per-device batch the process count derived; with LoRA
dropout on and another process layout it says the runs drew different dropout masks. Hand-built run folders, every
number distinct, so a swapped or mislabelled field shows.

Run: python -m pytest tests/test_compare_step.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

from clip_lora import artifacts, compare
from clip_lora.cli import run as run_verb


def make_run(folder: Path, batch: dict | None, lora_dropout: float, seed: int = 7) -> Path:
    """A finished run's files as compare reads them: run_config.json (flags + provenance), results, predictions."""
    folder.mkdir(parents=True)
    config = {
        "seed": seed,
        "lora_dropout": lora_dropout,
        "learning_rate": 0.005,
        "per_device_train_batch_size": batch["per_device_train_batch_size"] if batch else 5,
        "gradient_accumulation_steps": batch["gradient_accumulation_steps"] if batch else 1,
        "global_batch_size": batch["global_batch_size"] if batch else 5,
        "bf16": bool(batch and batch["precision"] == "bf16"),
        "provenance": {"versions": {"torch": "2.13.0"}, "code": {"git_commit": "abc"}, "data": None},
    }
    if batch:
        config["provenance"]["batch"] = {**batch, "max_grad_norm": 1.0}
    (folder / artifacts.RUN_CONFIG).write_text(json.dumps(config))
    (folder / artifacts.ALL_RESULTS).write_text(
        json.dumps({"eval_accuracy": 0.5, "zero_shot_accuracy": 0.25})
    )
    (folder / artifacts.PREDICTIONS).write_text("image,label,prediction,cat,dog\na.jpg,cat,cat,0.9,0.1\n")
    return folder


TWO_PROCESSES = {  # 4 x 3 x 1 = 12, bf16
    "processes": 4,
    "per_device_train_batch_size": 3,
    "gradient_accumulation_steps": 1,
    "global_batch_size": 12,
    "precision": "bf16",
}
ONE_PROCESS = {  # 1 x 6 x 2 = 12, fp32
    "processes": 1,
    "per_device_train_batch_size": 6,
    "gradient_accumulation_steps": 2,
    "global_batch_size": 12,
    "precision": "no",
}


def test_the_process_count_is_named_and_dropout_masks_explained(tmp_path, capsys):
    a = make_run(tmp_path / "a", TWO_PROCESSES, lora_dropout=0.1)
    b = make_run(tmp_path / "b", ONE_PROCESS, lora_dropout=0.1)
    assert run_verb("compare", [str(a), str(b)]) == 0
    text = capsys.readouterr().out
    report = compare.compare(a, b)
    assert report["flags"] == []  # the step's flags are reported as the step, not as flags that differ
    assert report["step"]["differ"] == [
        ("processes", 4, 1),
        ("per_device_train_batch_size", 3, 6),
        ("gradient_accumulation_steps", 1, 2),
        ("precision", "bf16", "no"),
    ]
    assert (
        "how a step was made (A -> B): processes 4 -> 1; per-device batch 3 -> 6; accumulation steps 1 -> 2; "
        "precision bf16 -> no\n"
        "  A: 4 process(es) x 3 per device x 1 accumulation = global batch 12, precision bf16\n"
        "  B: 1 process(es) x 6 per device x 2 accumulation = global batch 12, precision no\n"
        "  lora_dropout 0.1 / 0.1 with another process layout: the runs drew different dropout masks"
    ) in text
    assert "flags: the same" in text


def test_no_dropout_no_mask_note_and_the_same_step_is_said(tmp_path, capsys):
    a = make_run(tmp_path / "a", TWO_PROCESSES, lora_dropout=0.0)
    b = make_run(tmp_path / "b", ONE_PROCESS, lora_dropout=0.0)
    assert compare.compare(a, b)["step"]["dropout_masks_differ"] is False
    c = make_run(tmp_path / "c", TWO_PROCESSES, lora_dropout=0.1, seed=8)
    d = make_run(tmp_path / "d", TWO_PROCESSES, lora_dropout=0.1, seed=9)
    assert run_verb("compare", [str(c), str(d)]) == 0
    text = capsys.readouterr().out
    assert (
        "how a step was made: the same (4 process(es) x 3 per device x 1 accumulation = global batch 12"
        in text
    )
    assert "dropout masks" not in text
    assert "flags that differ (A -> B):\n  seed  8 -> 9\n" in text


def test_a_run_without_a_recorded_batch_keeps_the_step_flags(tmp_path, capsys):
    a = make_run(tmp_path / "a", None, lora_dropout=0.1)
    b = make_run(tmp_path / "b", ONE_PROCESS, lora_dropout=0.1)
    report = compare.compare(a, b)
    assert [name for name, _, _ in report["flags"]] == sorted(
        ["per_device_train_batch_size", "gradient_accumulation_steps", "global_batch_size"]
    )
    assert run_verb("compare", [str(a), str(b)]) == 0
    assert "how a step was made: not recorded by A (a run older than provenance)" in capsys.readouterr().out


def test_an_evaluation_is_not_compared_as_a_training_step(tmp_path):
    a = make_run(tmp_path / "a", TWO_PROCESSES, lora_dropout=0.1)
    b = make_run(tmp_path / "b", ONE_PROCESS, lora_dropout=0.1)
    config = artifacts.read_json(b / artifacts.RUN_CONFIG)
    (b / artifacts.RUN_CONFIG).write_text(json.dumps({**config, "do_train": False}))
    assert compare.compare(a, b)["step"] == {"known": False, "why": "B only evaluated (--do_train false)"}
