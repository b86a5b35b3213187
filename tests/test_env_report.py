"""`clip-lora env`: what a bug report needs, through the installed command (like `transformers env`).

Run: python -m pytest tests/test_env_report.py -q
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from testing_utils import ROOT

CLI = Path(sys.executable).with_name("clip-lora")


def _env(home: Path) -> dict:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "HF_", "XDG_"))}
    return {**keep, "HF_HOME": str(home / "hf"), "ACCELERATE_MIXED_PRECISION": "bf16"}


def _fields(text: str) -> dict:
    return dict(line[2:].split(": ", 1) for line in text.splitlines() if line.startswith("- "))


def test_env_lists_versions_devices_commit_and_the_accelerate_config_in_use(tmp_path):
    config = tmp_path / "hf" / "accelerate" / "default_config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("compute_environment: LOCAL_MACHINE\nnum_processes: 2\n")
    done = subprocess.run(
        [str(CLI), "env"], env=_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    fields = _fields(done.stdout)
    for name in ("torch", "transformers", "peft", "accelerate", "datasets", "huggingface_hub"):
        assert fields[name] == metadata.version(name), name
    assert fields["clip-lora"] == metadata.version("clip-lora")
    assert fields["Python"].startswith(platform.python_version())
    assert fields["platform"] == platform.platform()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert fields["git commit"].split()[0] == head.stdout.strip()
    assert fields["CUDA available"].split(",")[0] in ("yes", "no") and "torch CUDA build" in fields
    # The file `accelerate launch` reads without --config_file, and its contents, indented (pastes as a block).
    assert fields["accelerate config"] == str(config)
    assert "    num_processes: 2" in done.stdout.splitlines()
    assert fields["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_env_without_an_accelerate_config_says_so(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "clip_lora", "env"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert _fields(done.stdout)["accelerate config"] == "none (accelerate launch uses its defaults)"
