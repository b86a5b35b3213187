"""One subprocess smoke run shared by two test files (runs are the expensive part of the suite).

The uninterrupted reference run of tests/test_resume.py is made with fake HF_TOKEN / WANDB_API_KEY in its environment
and `--report_to wandb` (offline); tests/test_secrets.py greps its files (or makes the run itself when run alone).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, smoke_argv

FAKE_HF_TOKEN = "hf_FAKEtokenDoNotLeak0123456789abcdefXYZ"
FAKE_WANDB_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0deadbeef"  # 40 characters, like a real key
# 96 train images / batch 16 = 6 steps an epoch: checkpoint-6, -12, -18.
SHORT = ("--num_train_epochs", "3", "--max_train_samples", "96", "--max_eval_samples", "40")


def command(model_dir: Path, image_root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train_clip_lora.py"), *smoke_argv(model_dir, image_root, out, *SHORT, *extra)]


def env(scratch: Path, **extra: str) -> dict:
    return {**os.environ, "HF_DATASETS_CACHE": str(scratch / "hf-datasets"), "OMP_NUM_THREADS": "1", **extra}


def start_reference(tmp_path_factory, model_dir: Path, image_root: Path) -> tuple[Path, Path, subprocess.Popen | None]:
    """(output dir, wandb dir, process) of the shared uninterrupted run; process is None when it already ran."""
    base = tmp_path_factory.getbasetemp() / "reference-run"
    out, wandb_dir = base / "out", base / "wandb"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run_env = env(base, HF_TOKEN=FAKE_HF_TOKEN, WANDB_API_KEY=FAKE_WANDB_KEY, WANDB_MODE="offline",
                  WANDB_DIR=str(wandb_dir), WANDB_SILENT="true")  # fmt: skip
    if (out / "all_results.json").exists():
        return out, wandb_dir, None
    argv = command(model_dir, image_root, out, "--report_to", "wandb", "--push_to_hub", "false")
    # Console output goes to files (a pipe nobody reads would stall the run) and is kept for the secrets test.
    with open(base / "stdout.log", "wb") as stdout, open(base / "stderr.log", "wb") as stderr:
        return out, wandb_dir, subprocess.Popen(argv, env=run_env, stdout=stdout, stderr=stderr)


def finish(process: subprocess.Popen | None, out: Path) -> tuple[bytes, bytes]:
    """Waits for the run start_reference started (if any), asserts it succeeded; returns its (stdout, stderr)."""
    if process is not None:
        process.wait(timeout=400)
    stdout, stderr = ((out.parent / name).read_bytes() for name in ("stdout.log", "stderr.log"))
    assert process is None or process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    return stdout, stderr
