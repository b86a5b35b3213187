"""Interruption: a run killed with SIGKILL resumes from its last complete checkpoint and ends exactly where an
uninterrupted run ends; a save cut off half-way never becomes the checkpoint a rerun resumes from.

Run: python -m pytest tests/test_resume.py -q   (three short subprocess runs of the tiny smoke recipe)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from datasets import Dataset
from transformers import CLIPTokenizer
from transformers.trainer_utils import get_last_checkpoint

from clip_lora import trainer as trainer_module
from clip_lora.arguments import ClipLoraTrainingArguments
from clip_lora.modeling import apply_lora, load_clip
from clip_lora.trainer import CHECKPOINT_COMPLETE, ClipLoraTrainer, last_complete_checkpoint
from collator import ClipClassificationCollator
from metrics import compute_metrics
from testing_utils import command, env, finish, start_reference


def test_kill_9_in_second_epoch_then_rerun_resumes_and_matches(
    tiny_model_dir, image_root, tmp_path, tmp_path_factory
):
    out = tmp_path / "interrupted"
    # The uninterrupted reference goes alongside the run that gets killed (two cores; it only has to finish). It
    # also serves tests/test_secrets.py, hence its fake tokens and wandb: neither changes a number.
    ref_out, _, reference_run = start_reference(tmp_path_factory, tiny_model_dir, image_root)
    victim = subprocess.Popen(
        command(tiny_model_dir, image_root, out),
        env=env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not (out / "checkpoint-6" / CHECKPOINT_COMPLETE).exists():  # epoch 1 saved: epoch 2 is under way
        assert victim.poll() is None and time.monotonic() < deadline, (
            "the run ended before its first checkpoint"
        )
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert last_complete_checkpoint(out) == str(out / "checkpoint-6")  # killed before epoch 2 was saved
    assert not (out / "all_results.json").exists()

    rerun = subprocess.run(
        command(tiny_model_dir, image_root, out),
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming the interrupted run from {out / 'checkpoint-6'}" in rerun.stderr
    finish(reference_run, ref_out)

    resumed, uninterrupted = (json.loads((d / "all_results.json").read_text()) for d in (out, ref_out))
    assert resumed["eval_accuracy"] == uninterrupted["eval_accuracy"]
    assert resumed["dev_accuracy"] == uninterrupted["dev_accuracy"]
    assert (out / "predictions.csv").read_bytes() == (ref_out / "predictions.csv").read_bytes()
    assert (out / "adapter_model.safetensors").read_bytes() == (
        ref_out / "adapter_model.safetensors"
    ).read_bytes()
    history = [json.loads((d / "trainer_state.json").read_text())["log_history"] for d in (out, ref_out)]
    dev_curves = [[e["eval_accuracy"] for e in h if "eval_accuracy" in e] for h in history]
    assert dev_curves[0][-3:] == dev_curves[1] and len(dev_curves[1]) == 3  # epochs 2-3 replayed identically


# ---------------------------------------------------------------- a kill in the middle of a checkpoint save
@pytest.fixture()
def small_trainer(tiny_model_dir, tmp_path):
    model, processor = load_clip(str(tiny_model_dir))
    model = apply_lora(model, 4, 8, 0.0, ["q_proj", "v_proj"])
    torch.manual_seed(0)
    labels = [i % 3 for i in range(16)]
    pixels = [(torch.randn(3, 32, 32) * 0.2 + label).tolist() for label in labels]
    dataset = Dataset.from_dict({"pixel_values": pixels, "labels": labels}).with_format("torch")
    args = ClipLoraTrainingArguments(
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        eval_strategy="no",
        load_best_model_at_end=False,
        save_total_limit=1,
        report_to="none",
    )
    collate = ClipClassificationCollator.from_class_names(
        CLIPTokenizer.from_pretrained(tiny_model_dir), ["tench", "church", "parachute"], ["a photo of a {}."]
    )
    return ClipLoraTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collate,
        processing_class=processor,
        compute_metrics=compute_metrics,
        num_classes=3,
    )


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs, and nothing catches it."""


def test_kill_during_save_keeps_previous_checkpoint_usable(small_trainer, monkeypatch, tmp_path):
    out = tmp_path / "run"
    original = trainer_module.Trainer._save_rng_state

    def rng_state_then_die(self, output_dir):
        if (
            self.state.global_step == 4
        ):  # the second epoch's save: weights and optimizer written, state not yet
            raise Killed
        return original(self, output_dir)

    monkeypatch.setattr(trainer_module.Trainer, "_save_rng_state", rng_state_then_die)
    with pytest.raises(Killed):
        small_trainer.train()
    partial = out / "checkpoint-4"
    assert (partial / "adapter_model.safetensors").exists() and not (partial / "trainer_state.json").exists()
    # Trainer's own get_last_checkpoint picks the half-written checkpoint-4 (no rng state: not a faithful resume).
    assert get_last_checkpoint(str(out)) == str(partial)
    assert last_complete_checkpoint(out) == str(out / "checkpoint-2")
    assert (out / "checkpoint-2" / "trainer_state.json").exists()

    monkeypatch.setattr(trainer_module.Trainer, "_save_rng_state", original)
    assert last_complete_checkpoint(out, remove_partial=True) == str(out / "checkpoint-2")
    assert not partial.exists()
    result = small_trainer.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    assert small_trainer.state.global_step == 6 and result.global_step == 6
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-6"
    ]  # rotated only after it completed
    assert (out / "checkpoint-6" / CHECKPOINT_COMPLETE).exists()
