"""Scale: the same numbers whatever the accumulation and the number of processes.

- gradient accumulation: 1x8 == 2x4 == 4x2 (logged loss, every LoRA gradient, the adapter after a few steps);
- processes: `torchrun --nproc_per_node 2` x 16 (and x 2 x 8) == 1 process x 32 (logged losses, gradients, adapter);
- the global batch: derived per-device batch / accumulation, refused in one line when it cannot divide, stated in
  one log line; the smoke recipe's train_loss is the same at 2x8 and 1x16.

Run: python -m pytest tests/test_scale.py -q   (one 2-process torchrun run of the tiny trainer, ~30 s)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from clip_lora.batching import DEFAULT_GLOBAL_BATCH, optimizer_steps, resolve_batch
from clip_lora.errors import ArgumentError
from scale_worker import train
from testing_utils import ROOT, smoke_argv, torchrun_command, user_error

WORKER = Path(__file__).resolve().parent / "scale_worker.py"


def assert_same_training(result: dict, reference: dict, atol: float = 1e-6) -> None:
    assert result["losses"] == pytest.approx(reference["losses"], rel=1e-5)
    assert result["grad_norms"] == pytest.approx(reference["grad_norms"], rel=1e-4)
    assert result["grads"].keys() == reference["grads"].keys()
    assert any(g.abs().sum() > 0 for g in reference["grads"].values())
    for name, grad in reference["grads"].items():
        torch.testing.assert_close(result["grads"][name], grad, atol=atol, rtol=1e-4, msg=name)
    # The gradients above are the equivalence, compared tightly. The weights come after AdamW steps, which divide
    # each gradient by its running RMS: an element whose gradient is at float-noise level (~1e-9) moves by up to lr
    # per step whatever its sign, so summation-order noise shows there (measured: 1.4e-5 after 3 steps at lr 1e-2
    # with peft 0.22 / torch 2.13, one element of a weight of size 0.02). Bound: lr x steps x 1e-3.
    for name, weight in reference["adapter"].items():
        torch.testing.assert_close(result["adapter"][name], weight, atol=5e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("loss", ["contrastive", "ce"])
def test_gradient_accumulation_equals_one_big_batch(tiny_model_dir, tmp_path, loss):
    # Before: logged loss and gradients grew k-fold with the accumulation (ce: loss 1.155 / 2.311 / 4.621).
    reference = train(tiny_model_dir, tmp_path / "1x8", 8, loss, max_steps=2, num_images=16)
    assert reference["world_size"] == 1 and len(reference["losses"]) == 2
    for accumulation, per_device in [(2, 4), (4, 2)]:
        result = train(
            tiny_model_dir,
            tmp_path / f"{accumulation}x{per_device}",
            per_device,
            loss,
            max_steps=2,
            num_images=16,
            gradient_accumulation_steps=accumulation,
        )
        assert_same_training(result, reference)


@pytest.mark.parametrize("loss", ["contrastive", "ce"])
def test_a_short_step_with_empty_micro_batches_equals_one_batch(tiny_model_dir, tmp_path, loss):
    # 10 images at a global batch of 8: steps of 8, 2, 8 (max_steps 3 crosses the epoch). At 2 x 4 the short step's
    # micro-batches hold 1, 1, 0 and 0 images: the empty ones still run (a blank image, sliced away) and add nothing.
    reference = train(tiny_model_dir, tmp_path / "1x8", 8, loss, num_images=10)
    accumulated = train(
        tiny_model_dir, tmp_path / "4x2", 2, loss, num_images=10, gradient_accumulation_steps=4
    )
    assert len(reference["losses"]) == 3
    assert_same_training(accumulated, reference)


def test_two_processes_of_16_equal_one_of_32_also_with_accumulation(tiny_model_dir, tmp_path):
    out = tmp_path / "ddp.pt"
    # the worker's runs: per-device batch x accumulation on each of the 2 processes
    command = torchrun_command(WORKER, str(tiny_model_dir), str(out), "16x1", "8x2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    two = torch.load(out)
    one = train(tiny_model_dir, tmp_path / "one", 32)
    assert one["world_size"] == 1
    # The contrastive loss sees the global batch of 32 on both: same loss, same gradients, same adapter; and
    # with accumulation on top (2 processes x 2 micro-batches of 8).
    for config in ("16x1", "8x2"):
        assert two[config]["world_size"] == 2
        assert_same_training(two[config], one)


@pytest.mark.parametrize(
    ("given", "processes", "expected"),
    [
        ((None, None, None), 1, (DEFAULT_GLOBAL_BATCH, 1, DEFAULT_GLOBAL_BATCH)),
        ((None, None, None), 8, (4, 1, 32)),  # the seed on 8 GPUs is still a global batch of 32
        ((32, 8, None), 2, (8, 2, 32)),  # per-device batch given: the accumulation is derived
        ((32, None, 4), 2, (4, 4, 32)),  # accumulation given: the per-device batch is derived
        ((16, 8, 2), 1, (8, 2, 16)),
        ((None, 8, 2), 2, (8, 2, 32)),  # per-device without a global batch: Trainer's meaning
        ((None, 64, None), 1, (64, 1, 64)),
    ],
)
def test_global_batch_is_derived(given, processes, expected):
    assert resolve_batch(*given, processes) == expected


def _trainer_steps(num_examples: int, per_device: int, processes: int, accumulation: int, epochs: int) -> int:
    """Trainer's count, from a real DataLoader: each process takes every W-th batch, a short window still steps."""
    batches = len(DataLoader(range(num_examples), batch_size=per_device))
    per_process = len(range(0, batches, processes))
    return epochs * max(1, -(-per_process // accumulation))


@pytest.mark.parametrize(
    ("num_examples", "per_device", "processes", "accumulation", "epochs"),
    [
        (100, 8, 1, 2, 1),
        (100, 8, 2, 1, 3),
        (64, 8, 1, 2, 3),
        (10, 4, 1, 4, 1),
        (33, 4, 4, 1, 2),
        (7, 8, 1, 1, 1),
    ],
)
def test_optimizer_steps_follow_the_trainers_arithmetic(
    num_examples, per_device, processes, accumulation, epochs
):
    steps = optimizer_steps(num_examples, per_device, processes, accumulation, epochs, max_steps=-1)
    assert steps == _trainer_steps(num_examples, per_device, processes, accumulation, epochs)
    assert optimizer_steps(num_examples, per_device, processes, accumulation, epochs, max_steps=5) == 5
    assert optimizer_steps(None, per_device, processes, accumulation, epochs, max_steps=-1) is None


@pytest.mark.parametrize(
    ("given", "processes", "names"),
    [
        ((32, None, None), 3, "--global_batch_size 32 does not divide over 3 processes"),
        ((32, 12, None), 1, "--per_device_train_batch_size 12"),
        ((32, 8, 2), 1, "--global_batch_size 32 != 1 process x --per_device_train_batch_size 8"),
        ((0, None, None), 1, "--global_batch_size 0 must be a positive integer"),
    ],
)
def test_global_batch_that_cannot_divide_is_refused(given, processes, names):
    with pytest.raises(ArgumentError, match=names):
        resolve_batch(*given, processes)


def test_indivisible_global_batch_is_one_error_line(tiny_model_dir, image_root, tmp_path, capsys):
    argv = smoke_argv(tiny_model_dir, image_root, tmp_path / "out", "--per_device_train_batch_size", "12")
    line = user_error(argv, capsys)
    assert "--global_batch_size 16" in line and "--per_device_train_batch_size 12" in line
    assert not (tmp_path / "out").exists()  # refused while parsing, before any data or model


def test_multi_gpu_launch_without_cuda_is_one_error_line(
    tiny_model_dir, image_root, tmp_path, capsys, monkeypatch
):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: a multi-GPU launch is legitimate")
    # What `accelerate launch --config_file accelerate_config.yaml` puts in each process's environment.
    for name, value in {
        "WORLD_SIZE": "8",
        "RANK": "0",
        "ACCELERATE_MIXED_PRECISION": "bf16",
        "ACCELERATE_DYNAMO_BACKEND": "NO",
    }.items():
        monkeypatch.setenv(name, value)
    argv = smoke_argv(tiny_model_dir, image_root, tmp_path / "out")
    argv.remove("--use_cpu")
    argv.remove("true")
    line = user_error(argv, capsys)
    assert "8 GPU processes" in line and "no CUDA GPU" in line and "torchrun --nproc_per_node" in line


def _smoke(tiny_model_dir, image_root, out: Path, *extra: str) -> dict:
    from train_clip_lora import main

    argv = smoke_argv(
        tiny_model_dir,
        image_root,
        out,
        *("--num_train_epochs", "1", "--max_train_samples", "64", "--max_eval_samples", "20"),
        *("--learning_rate", "0", "--lora_dropout", "0", "--warmup_steps", "0"),
        *extra,
    )
    return main(argv)


def test_smoke_recipe_train_loss_same_with_accumulation(
    tiny_model_dir, image_root, tmp_path, caplog, monkeypatch
):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    with caplog.at_level(logging.INFO, logger="train_clip_lora"):
        accumulated = _smoke(
            tiny_model_dir,
            image_root,
            tmp_path / "2x8",
            *("--gradient_accumulation_steps", "2", "--per_device_train_batch_size", "8"),
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Batch: ")]
    state = json.loads((tmp_path / "2x8" / "trainer_state.json").read_text())
    assert lines == [
        f"Batch: 1 process (cpu) x 8 per device x 2 accumulation steps = global batch 16; "
        f"{state['global_step']} optimizer steps"
    ]
    whole = _smoke(tiny_model_dir, image_root, tmp_path / "1x16", "--per_device_train_batch_size", "16")
    assert accumulated["train_loss"] == pytest.approx(whole["train_loss"], abs=1e-4)
    assert accumulated["eval_loss"] == pytest.approx(whole["eval_loss"], abs=1e-5)
