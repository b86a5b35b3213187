"""The program as launched, at any scale: `train_clip_lora.py` under `torchrun` trains the same adapter as one process.

A real run's steps, in main()'s order: the zero-shot baseline, training with dev evaluations in between, the final
val evaluation, WiSE-FT. A global batch of 16, 2 epochs, lr 1e-3, lora_dropout 0, a train set that leaves a short
last step. Launched as:
- `torchrun --nproc_per_node 2`: ce loss, 44 images (steps of 16, 16, 12), dev evaluation and checkpoints every 2
  steps, WiSE-FT after training;
- two `torchrun --nnodes 2 --node_rank 0|1` on 127.0.0.1, the `multi_node` config's path: contrastive loss, 33
  images (steps of 16, 16, 1: the last step leaves one process and one accumulated micro-batch empty);
against one process x 16 and one process x 8 x 2 accumulation (in-process main()). Every logged step's loss and
grad norm agree to relative 1e-4; the adapters to 1e-4 absolute (a tenth of the lr: Adam moves every weight by ~lr
a step, so float noise in a gradient near 0 can flip a step's sign; measured: ~1e-7). Also under 2 processes: an
evaluation-only run (also with an eval batch whose every image became unreadable on one process), a run resumed
mid-epoch, every val image evaluated exactly once, outputs written once; and a run whose gradient averaging is broken
on purpose stops at step 1 in one line.
(`accelerate launch --cpu --num_processes 2` would silently run one process: torchrun is CPU DDP here.)

Run: python -m pytest tests/test_distributed.py -q   (five short multi-process launches, ~2 min)
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train_clip_lora
from clip_lora import artifacts, run_dir
from clip_lora.artifacts import read_predictions
from clip_lora.data import IMAGENETTE_CLASSES, load_splits
from testing_utils import ROOT, smoke_argv, torchrun_command, torchrun_node_commands

VAL_IMAGES = 50  # 4 eval batches of 16 (16+16+16+2) over 2 processes: the last batch is padded on one of them
LEARNING_RATE = 1e-3
SCALE_FLAGS = (
    *("--num_train_epochs", "2", "--max_train_samples", "44", "--max_eval_samples", str(VAL_IMAGES)),
    *("--per_device_eval_batch_size", "16", "--learning_rate", str(LEARNING_RATE), "--lora_dropout", "0"),
    *("--warmup_steps", "0", "--logging_steps", "1"),
)
LOSS_FLAGS = {
    # checkpoints mid-epoch (steps 2, 4, 6 of 3-step epochs): the resumed run restarts inside an epoch
    "ce": (
        *("--loss", "ce", "--eval_strategy", "steps", "--eval_steps", "2"),
        *("--save_strategy", "steps", "--save_steps", "2", "--wise_alphas", "0,0.5,1"),
    ),
    # the recipe's evaluation and checkpoint after every epoch; steps of 16, 16 and 1 image: the last one leaves
    # a process (and, at 8 x 2, a micro-batch) empty
    "contrastive": ("--loss", "contrastive", "--max_train_samples", "33"),
}


def launch_argv(tiny_model_dir, image_root, out: Path, loss: str, *extra: str) -> list[str]:
    argv = smoke_argv(tiny_model_dir, image_root, out, *SCALE_FLAGS, *LOSS_FLAGS[loss], *extra)
    argv.remove("--use_cpu")  # as a user types it: on a machine without GPUs the launch itself means CPU DDP
    argv.remove("true")
    return argv


def run_env(scratch: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(scratch / "hf-datasets")}


def torchrun(scratch: Path, argv: list[str], script: Path = ROOT / "train_clip_lora.py"):
    return subprocess.run(
        torchrun_command(script, *argv),
        env=run_env(scratch),
        capture_output=True,
        text=True,
        timeout=400,
        cwd=scratch,
    )


@pytest.fixture(scope="module")
def launched(tiny_model_dir, image_root, tmp_path_factory) -> dict:
    """{loss: (output dir, completed process)}: ce on one machine, contrastive on two 'machines' (nodes)."""
    tmp = tmp_path_factory.mktemp("launched")
    runs = {}
    out = tmp / "ce"
    runs["ce"] = (out, torchrun(tmp, launch_argv(tiny_model_dir, image_root, out, "ce")))
    out = tmp / "contrastive"
    argv = launch_argv(tiny_model_dir, image_root, out, "contrastive")
    nodes = []
    for rank, command in enumerate(torchrun_node_commands(ROOT / "train_clip_lora.py", *argv)):
        # each node has its own disk for the datasets cache; the output dir is shared, as on a cluster
        nodes.append(
            subprocess.Popen(
                command,
                env=run_env(tmp / f"node{rank}"),
                cwd=tmp,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    outputs = [node.communicate(timeout=400) for node in nodes]
    runs["contrastive"] = (out, subprocess.CompletedProcess(nodes[0].args, nodes[0].returncode, *outputs[0]))
    for loss, (_, run) in runs.items():
        assert run.returncode == 0, f"{loss}: {run.stderr[-4000:]}"
    assert nodes[1].returncode == 0, outputs[1][1][-4000:]
    return runs


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, image_root, tmp_path_factory) -> dict:
    """{(loss, layout): output dir} for one process x 16 and one process x 8 x 2 accumulation."""
    tmp = tmp_path_factory.mktemp("one-process")
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_DATASETS_CACHE", str(tmp / "hf-datasets"))
        for loss in LOSS_FLAGS:
            for layout, flags in {"16": (), "8x2": ("--per_device_train_batch_size", "8")}.items():
                out = tmp / f"{loss}-{layout}"
                train_clip_lora.main(
                    smoke_argv(tiny_model_dir, image_root, out, *SCALE_FLAGS, *LOSS_FLAGS[loss], *flags)
                )
                runs[loss, layout] = out
    return runs


def logged_steps(out: Path) -> list[dict]:
    history = json.loads((out / artifacts.TRAINER_STATE).read_text())["log_history"]
    return [entry for entry in history if "loss" in entry]


def assert_same_adapter(out: Path, reference: Path, atol: float = LEARNING_RATE / 10) -> None:
    ours, theirs = (load_file(d / "adapter_model.safetensors") for d in (out, reference))
    assert ours.keys() == theirs.keys()
    for name, weight in theirs.items():
        torch.testing.assert_close(ours[name], weight, atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize("loss", list(LOSS_FLAGS))
def test_launched_run_trains_what_one_process_trains(launched, one_process, loss):
    out, _ = launched[loss]
    steps = logged_steps(out)
    assert len(steps) == 6  # 2 epochs x 3 steps, the last of each epoch short
    for layout in ("16", "8x2"):
        reference = one_process[loss, layout]
        expected = logged_steps(reference)
        assert [s["step"] for s in steps] == [s["step"] for s in expected]
        for key in ("loss", "grad_norm"):
            assert [s[key] for s in steps] == pytest.approx([s[key] for s in expected], rel=1e-4), (
                layout,
                key,
            )
        assert_same_adapter(out, reference)
        results, reference_results = (
            artifacts.read_json(d / artifacts.ALL_RESULTS) for d in (out, reference)
        )
        for key in ("zero_shot_accuracy", "eval_accuracy", "dev_accuracy"):
            assert results[key] == reference_results[key], (layout, key)
        assert results["eval_loss"] == pytest.approx(reference_results["eval_loss"], rel=1e-4)
        # Calibration: the dev logits are gathered before T is fitted, so N processes fit one process's T.
        fits = [artifacts.read_json(d / artifacts.TEMPERATURE) for d in (out, reference)]
        assert fits[0]["temperature"] == pytest.approx(fits[1]["temperature"], rel=1e-4), layout
        assert fits[0]["dev_images"] == fits[1]["dev_images"]
        for key in ("zero_shot_ece", "eval_ece", "eval_nll", "eval_brier"):
            assert results[key] == pytest.approx(reference_results[key], rel=1e-4, abs=1e-6), (layout, key)


def test_wise_ft_under_two_processes_equals_one_process(launched, one_process):
    out, _ = launched["ce"]
    ours, reference = (
        artifacts.read_json(d / artifacts.WISE_FT_JSON) for d in (out, one_process["ce", "16"])
    )
    assert ours["alphas"] == reference["alphas"] == [0.0, 0.5, 1.0]
    assert ours["num_images"] == reference["num_images"] == {"val": VAL_IMAGES}
    for split, rows in reference["results"].items():
        for row, expected in zip(ours["results"][split], rows, strict=True):
            assert row == pytest.approx(expected, rel=1e-5), (
                split
            )  # accuracy and F1 equal, the loss to float noise


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _probabilities(path) -> dict:
    return {row["image"]: [float(row[name]) for name in list(row)[3:]] for row in _rows(path)}


def test_an_evaluation_only_run_under_two_processes_equals_one_process_also_when_images_became_unreadable(
    one_process, tiny_model_dir, image_root, tmp_path
):
    reference = one_process["ce", "16"]
    # The val images of the second eval batch (all 16: process 1's first batch) and one of the last batch became
    # unreadable after the pre-training check (tests/unchecked_launch.py skips the check, as if they changed since).
    data = tmp_path / "data"
    shutil.copytree(image_root, data)
    val_ids = load_splits("imagenette", data_dir=str(data), max_eval_samples=VAL_IMAGES, seed=42)["val"][
        "image_id"
    ]
    gone = {*val_ids[16:32], val_ids[49]}
    for image_id in gone:
        (data / image_id).write_bytes(b"rewritten")
    out = tmp_path / "eval"
    argv = launch_argv(tiny_model_dir, data, out, "ce", "--do_train", "false")
    run = torchrun(
        tmp_path,
        ["train", *argv, "--adapter_name_or_path", str(reference)],
        ROOT / "tests" / "unchecked_launch.py",
    )
    assert run.returncode == 0, run.stderr[-4000:]  # before: process 1 crashed, process 0 died in the gather
    ours, theirs = (_probabilities(d / artifacts.PREDICTIONS) for d in (out, reference))
    assert ours.keys() == theirs.keys() - gone and len(ours) == VAL_IMAGES - 17  # each readable image once
    for image, probabilities in ours.items():
        assert probabilities == pytest.approx(theirs[image], abs=1e-5), image
    rows = [row for row in _rows(reference / artifacts.PREDICTIONS) if row["image"] not in gone]
    accuracy = sum(row["label"] == row["prediction"] for row in rows) / len(rows)
    assert artifacts.read_json(out / artifacts.ALL_RESULTS)["eval_accuracy"] == pytest.approx(accuracy)
    assert gone <= {line.split("\t")[0] for line in (out / artifacts.SKIPPED_IMAGES).read_text().splitlines()}


def test_a_run_resumed_mid_epoch_under_two_processes_ends_where_the_uninterrupted_one_ends(
    launched, tiny_model_dir, image_root, tmp_path
):
    finished, _ = launched["ce"]
    # What a kill after checkpoint-4 (step 1 of epoch 2) leaves: the run's config, its zero-shot CSV, the checkpoint.
    out = tmp_path / "interrupted"
    out.mkdir()
    for name in (artifacts.RUN_CONFIG, artifacts.ZERO_SHOT_PREDICTIONS, "checkpoint-4"):
        copy = shutil.copytree if (finished / name).is_dir() else shutil.copy2
        copy(finished / name, out / name)
    # ... as written at this path: the best checkpoint it names is its own (the marker lists the new hash).
    state = out / "checkpoint-4" / artifacts.TRAINER_STATE
    state.write_text(state.read_text().replace(str(finished), str(out)))
    run_dir.write_checkpoint_marker(out / "checkpoint-4", 4)
    run = torchrun(tmp_path, launch_argv(tiny_model_dir, image_root, out, "ce"))
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"Resuming the interrupted run from {out / 'checkpoint-4'}" in run.stderr
    assert [s["step"] for s in logged_steps(out)] == [1, 2, 3, 4, 5, 6]
    assert logged_steps(out) == logged_steps(finished)
    assert_same_adapter(out, finished, atol=0)
    for name in (artifacts.PREDICTIONS, artifacts.CLASSIFICATION_REPORT_JSON):
        assert (out / name).read_bytes() == (finished / name).read_bytes(), name


def test_unaveraged_gradients_stop_the_run_at_step_1_in_one_line(tiny_model_dir, image_root, tmp_path):
    # unsynced_launch.py undoes the fix for evaluation-before-training on purpose: each process trains its own copy.
    out = tmp_path / "unsynced"
    run = torchrun(
        tmp_path, launch_argv(tiny_model_dir, image_root, out, "ce"), ROOT / "tests" / "unsynced_launch.py"
    )
    assert run.returncode != 0
    ours = run.stderr.split("torch/distributed/elastic")[
        0
    ]  # torchrun's own report of the failed child follows
    errors = [line for line in ours.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in ours, ours[-3000:]
    assert "the 2 processes hold different gradients at step 1" in errors[0]
    assert "not averaged across processes" in errors[0]
    assert not list(out.glob("checkpoint-*")) and not (out / artifacts.ALL_RESULTS).exists()


# ---------------------------------------------------------------- the launched run's outputs


def test_two_processes_really_trained(launched):
    out, _ = launched["ce"]
    state = json.loads((out / artifacts.TRAINER_STATE).read_text())
    # the smoke recipe's global batch of 16 = 2 processes x 8: 3 steps an epoch, as with one process
    assert state["global_step"] == 6 and state["train_batch_size"] == 8


@pytest.mark.parametrize("csv_name", [artifacts.PREDICTIONS, artifacts.ZERO_SHOT_PREDICTIONS])
def test_every_val_image_exactly_once_with_its_own_label(launched, csv_name):
    out, _ = launched["ce"]
    rows = _rows(out / csv_name)
    counts = Counter(r["image"] for r in rows)
    assert len(rows) == VAL_IMAGES and set(counts.values()) == {1}
    for row in rows:  # rows line up with images: a row's label is the class folder in its own path
        assert row["label"] == IMAGENETTE_CLASSES[row["image"].split("/")[1]]


def test_metrics_count_each_image_once(launched):
    out, _ = launched["ce"]
    results = artifacts.read_json(out / artifacts.ALL_RESULTS)
    report = artifacts.read_json(out / artifacts.CLASSIFICATION_REPORT_JSON)
    assert sum(c["support"] for c in report["per_class"].values()) == VAL_IMAGES
    labels, predictions, _ = read_predictions(out / artifacts.PREDICTIONS)
    assert results["eval_accuracy"] == pytest.approx((labels == predictions).mean())
    zs_labels, zs_predictions, _ = read_predictions(out / artifacts.ZERO_SHOT_PREDICTIONS)
    assert results["zero_shot_accuracy"] == pytest.approx((zs_labels == zs_predictions).mean())


@pytest.mark.parametrize(
    ("prefix", "csv_name"), [("zero_shot", artifacts.ZERO_SHOT_PREDICTIONS), ("eval", artifacts.PREDICTIONS)]
)
def test_loss_is_the_mean_per_image_cross_entropy_over_val(launched, prefix, csv_name):
    # Image->text only, every val image once: the same number with any process count or batch size (the
    # text->image term made it 2.2948 on one process and 2.3325 on two).
    out, _ = launched["ce"]
    results = artifacts.read_json(out / artifacts.ALL_RESULTS)
    rows = _rows(out / csv_name)
    expected = -sum(math.log(float(row[row["label"]])) for row in rows) / len(rows)
    assert results[f"{prefix}_loss"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("loss", list(LOSS_FLAGS))
def test_outputs_written_by_the_main_process_only(launched, loss):
    out, run = launched[loss]
    logs = run.stdout + run.stderr
    assert logs.count("Batch: 2 processes (cpu) - no CUDA GPU: CPU DDP over gloo x 8 per device") == 1
    for info in ("INFO train_clip_lora: Data: ", "INFO train_clip_lora: Trainable parameters"):
        assert logs.count(info) == 1, info  # INFO from the main process only
    assert run.stdout.count("macro avg") == 1  # the report is printed (and written) once
    assert logs.count("zero-shot accuracy") == 1
    # the replica check ran at step 1 and before every checkpoint (ce: steps 2, 4, 6; contrastive: 2 epochs)
    checks = {"ce": 4, "contrastive": 3}[loss]
    assert logs.count(f"Replica check: {checks} checks that every process holds the same adapter") == 1
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
