"""Interruption: a run killed with SIGKILL or SIGTERM, or stopped by a full disk, resumes from its last complete
checkpoint and ends exactly where an uninterrupted run ends; a save cut off half-way, or a checkpoint damaged later,
never becomes the checkpoint a rerun resumes from; a second run into a busy folder is refused.

Run: python -m pytest tests/test_resume.py -q   (short subprocess runs of the tiny smoke recipe)
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers.trainer_utils import get_last_checkpoint

import train_clip_lora
from clip_lora import artifacts, run_dir
from clip_lora import trainer as trainer_module
from clip_lora.cli import run as run_verb
from clip_lora.trainer import CHECKPOINT_COMPLETE, last_complete_checkpoint
from testing_utils import (
    ROOT,
    assert_same_results,
    command,
    env,
    finish,
    make_tiny_trainer,
    small_argv,
    start_reference,
    user_error,
)


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
    """3 epochs of 2 steps on 16 tensor images, a checkpoint per epoch (the save a kill interrupts)."""
    return make_tiny_trainer(
        tiny_model_dir,
        tmp_path / "run",
        num_images=16,
        num_train_epochs=3,
        save_strategy="epoch",
        save_total_limit=1,
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


# ---------------------------------------------------------------- SIGTERM, a concurrent run, a full disk, damage
def test_sigterm_mid_run_a_concurrent_run_is_refused_and_the_rerun_matches(
    small_run, tiny_model_dir, tmp_path, capsys, image_check_cache
):
    data, reference, _ = small_run
    out = tmp_path / "out"
    victim = subprocess.Popen(
        [sys.executable, str(ROOT / "train_clip_lora.py"), *small_argv(tiny_model_dir, data, out)],
        env=env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "stderr.log", "wb"),  # noqa: SIM115 - the child holds it
    )
    deadline = time.monotonic() + 240
    while not (out / "zero_shot_predictions.csv").exists():  # zero-shot written: training is next
        assert victim.poll() is None and time.monotonic() < deadline, (
            "the run ended before its zero-shot pass"
        )
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGSTOP)  # held still while a second run tries the same folder
    try:
        line = user_error(small_argv(tiny_model_dir, data, out), capsys)
        assert line == (
            f"error: --output_dir {out} is in use by another run (pid {victim.pid} on {socket.gethostname()}); "
            "wait for it to end or choose another --output_dir."
        )
    finally:
        os.kill(victim.pid, signal.SIGTERM)
        os.kill(victim.pid, signal.SIGCONT)
    # SIGTERM unwinds the run (temp files removed) and says where it stopped: 128 + 15, one line.
    assert victim.wait(timeout=60) == 143
    assert_last_line(tmp_path / "stderr.log", "error: terminated (SIGTERM); rerun the same command ")
    train_clip_lora.main(small_argv(tiny_model_dir, data, out))
    assert_same_results(out, reference)


def assert_last_line(log: Path, start: str) -> str:
    text = log.read_text(errors="replace")
    lines = text.rstrip().splitlines()
    assert "Traceback" not in text and lines and lines[-1].startswith(start), text[-3000:]
    assert sum(line.startswith("error: ") for line in lines) == 1
    return lines[-1]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
# Runs out during the first checkpoint (CI) / while writing the last files (`make fuzz` too).
@pytest.mark.parametrize("free_fraction", [0.35, 0.9] if os.environ.get("CLIP_LORA_ALL_FAULTS") else [0.35])
def test_a_full_disk_is_one_line_then_the_rerun_with_space_resumes_and_matches(
    small_run, tiny_model_dir, tmp_path, free_fraction, image_check_cache, capsys
):
    data, reference, _ = small_run
    needed = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={4 * needed}", "tmpfs", str(disk)], check=True)
    try:
        filler = disk / "filler"
        filler.write_bytes(bytes(4 * needed - int(free_fraction * needed)))
        out = disk / "out"
        # Whichever library was writing when the space ran out raises its own error (torch: "unexpected pos",
        # safetensors: "os error 28", Python: ENOSPC): the CLI says it in one line, with status 74.
        capsys.readouterr()
        assert run_verb("train", small_argv(tiny_model_dir, data, out)) == 74
        err = capsys.readouterr().err
        lines = err.rstrip().splitlines()
        assert "Traceback" not in err and sum(line.startswith("error: ") for line in lines) == 1
        assert lines[-1].startswith(f"error: no space left on the device at {disk}")
        assert f"free space on the disk holding {disk}" in lines[-1] and "rerun the same command" in lines[-1]
        assert not run_dir.is_finished(out)
        filler.unlink()
        assert run_verb("train", small_argv(tiny_model_dir, data, out)) == 0
        assert_same_results(out, reference)
    finally:
        run_dir.release_lock(disk / "out")
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(
    small_run, tiny_model_dir, tmp_path, monkeypatch, caplog, image_check_cache
):
    data, reference, _ = small_run
    caplog.set_level(logging.INFO, logger="train_clip_lora")
    out = tmp_path / "out"
    original = artifacts.write_predictions

    def killed_at_final_predictions(path, *args, **kwargs):
        if Path(path).name == artifacts.PREDICTIONS:
            raise Killed
        return original(path, *args, **kwargs)

    monkeypatch.setattr(artifacts, "write_predictions", killed_at_final_predictions)
    with pytest.raises(Killed):
        train_clip_lora.main(small_argv(tiny_model_dir, data, out))
    monkeypatch.undo()
    newest = out / "checkpoint-2" / "adapter_model.safetensors"
    damaged = bytearray(newest.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte inside a tensor: still loads, silently wrong
    newest.write_bytes(bytes(damaged))
    assert last_complete_checkpoint(out) == str(out / "checkpoint-1")
    train_clip_lora.main(small_argv(tiny_model_dir, data, out))
    assert (
        f"Not resuming from {out / 'checkpoint-2'}: it is damaged (adapter_model.safetensors does not match "
        "the hash recorded when it was saved)" in caplog.text
    )
    assert f"Resuming the interrupted run from {out / 'checkpoint-1'}" in caplog.text
    assert_same_results(out, reference)
