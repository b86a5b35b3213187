"""Distributed: the smoke recipe under `torchrun --nproc_per_node 2` (two gloo processes on CPU) finishes, evaluates
every val image exactly once (no padding duplicates in predictions.csv or in the metrics) and writes its outputs from
the main process only. (`accelerate launch --cpu --num_processes 2` would silently run one process.)

Run: python -m pytest tests/test_distributed.py -q   (one short 2-process run of the tiny smoke recipe)
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from collections import Counter

import pytest

from clip_lora.artifacts import read_predictions
from clip_lora.data import IMAGENETTE_CLASSES
from testing_utils import ROOT, smoke_argv, torchrun_command

VAL_IMAGES = 50  # 4 eval batches of 16 (16+16+16+2) over 2 processes: the last batch is padded on one of them


@pytest.fixture(scope="module")
def ddp_run(tiny_model_dir, image_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    out = tmp / "out"
    argv = smoke_argv(
        tiny_model_dir,
        image_root,
        out,
        "--num_train_epochs",
        "1",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        str(VAL_IMAGES),
        "--per_device_eval_batch_size",
        "16",
    )
    argv.remove("--use_cpu")  # as a user types it: on a machine without GPUs the launch itself means CPU DDP
    argv.remove("true")
    command = torchrun_command(ROOT / "train_clip_lora.py", *argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(tmp / "hf-datasets")}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, cwd=tmp)
    assert run.returncode == 0, run.stderr[-4000:]
    return out, run


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_really_trained(ddp_run):
    out, _ = ddp_run
    state = json.loads((out / "trainer_state.json").read_text())
    # 64 train images, the smoke recipe's global batch of 16 = 2 processes x 8: 4 steps an epoch, as with one process.
    assert state["global_step"] == 4 and state["train_batch_size"] == 8


@pytest.mark.parametrize("csv_name", ["predictions.csv", "zero_shot_predictions.csv"])
def test_every_val_image_exactly_once_with_its_own_label(ddp_run, csv_name):
    out, _ = ddp_run
    rows = _rows(out / csv_name)
    counts = Counter(r["image"] for r in rows)
    assert len(rows) == VAL_IMAGES and set(counts.values()) == {1}
    for row in rows:  # rows line up with images: a row's label is the class folder in its own path
        assert row["label"] == IMAGENETTE_CLASSES[row["image"].split("/")[1]]


def test_metrics_count_each_image_once(ddp_run):
    out, _ = ddp_run
    results = json.loads((out / "all_results.json").read_text())
    report = json.loads((out / "classification_report.json").read_text())
    assert sum(c["support"] for c in report["per_class"].values()) == VAL_IMAGES
    labels, predictions, _ = read_predictions(out / "predictions.csv")
    assert results["eval_accuracy"] == pytest.approx((labels == predictions).mean())
    zs_labels, zs_predictions, _ = read_predictions(out / "zero_shot_predictions.csv")
    assert results["zero_shot_accuracy"] == pytest.approx((zs_labels == zs_predictions).mean())


@pytest.mark.parametrize(
    ("prefix", "csv_name"), [("zero_shot", "zero_shot_predictions.csv"), ("eval", "predictions.csv")]
)
def test_loss_is_the_mean_per_image_cross_entropy_over_val(ddp_run, prefix, csv_name):
    # Image->text only, every val image once: the same number with any process count or batch size (the
    # text->image term made it 2.2948 on one process and 2.3325 on two).
    out, _ = ddp_run
    results = json.loads((out / "all_results.json").read_text())
    rows = _rows(out / csv_name)
    expected = -sum(math.log(float(row[row["label"]])) for row in rows) / len(rows)
    assert results[f"{prefix}_loss"] == pytest.approx(expected, rel=1e-4)


def test_outputs_written_by_the_main_process_only(ddp_run):
    out, run = ddp_run
    logs = run.stdout + run.stderr
    assert logs.count("Batch: 2 processes (cpu) - no CUDA GPU: CPU DDP over gloo x 8 per device") == 1
    for info in ("INFO train_clip_lora: Data: ", "INFO train_clip_lora: Trainable parameters"):
        assert logs.count(info) == 1, info  # INFO from the main process only
    assert run.stdout.count("macro avg") == 1  # the report is printed (and written) once
    assert (run.stdout + run.stderr).count("zero-shot accuracy") == 1
    assert not list(out.glob(".write-test-*")) and not list(out.glob("**/*.tmp"))
    for name in [
        "adapter_model.safetensors",
        "all_results.json",
        "predictions.csv",
        "classification_report.json",
    ]:
        assert (out / name).is_file(), name


@pytest.mark.parametrize(
    ("name", "kind", "machines"),
    [("1gpu", "NO", 1), ("multi_gpu", "MULTI_GPU", 1), ("multi_node", "MULTI_GPU", 2)],
)
def test_accelerate_configs_load(name, kind, machines):
    from accelerate.commands.config.config_args import load_config_from_file

    path = (
        ROOT / "accelerate_config.yaml"
        if name == "multi_gpu"
        else ROOT / "clip_lora" / "accelerate_configs" / f"{name}.yaml"
    )
    config = load_config_from_file(str(path))
    assert config.distributed_type.value == kind and config.num_machines == machines
    assert config.mixed_precision == "bf16" and not config.use_cpu
    assert config.num_processes == {"1gpu": 1, "multi_gpu": 8, "multi_node": 16}[name]
