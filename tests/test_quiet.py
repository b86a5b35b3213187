"""A run's log, written to a file, is readable: no progress-bar frames or cursor codes, no warning twice; pinned
memory is asked for only where a GPU could use it."""

from __future__ import annotations

import io
import re
import sys
from collections import Counter

import torch

from clip_lora import image_check
from clip_lora.arguments import ClipLoraTrainingArguments
from clip_lora.data import load_splits
from testing_utils import finish, start_reference

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def test_a_runs_log_has_no_bars_and_no_repeated_warning(tiny_model_dir, image_root, tmp_path_factory):
    # The shared uninterrupted reference run (tests/test_resume.py), its stdout and stderr written to files.
    out, _, process = start_reference(tmp_path_factory, tiny_model_dir, image_root)
    stdout, stderr = (stream.decode(errors="replace") for stream in finish(process, out))
    log = stdout + stderr
    assert "\x1b[" not in log and "\r" not in log  # no cursor-up codes, no redrawn bars
    assert "it/s]" not in log and "%|" not in log
    lines = [TIMESTAMP.sub("", line).strip() for line in log.splitlines()]
    warnings = Counter(line for line in lines if re.search(r"warn", line, re.I))
    assert all(count == 1 for count in warnings.values()), warnings.most_common(3)
    assert not [line for line in lines if "FutureWarning" in line or "pin_memory" in line]
    assert any(line.startswith("{'eval_loss'") for line in lines)  # the Trainer's log lines replace its bars


def test_pinned_memory_only_with_cuda_and_trainer_bars_only_on_a_terminal(tmp_path):
    args = ClipLoraTrainingArguments(output_dir=str(tmp_path))
    assert args.dataloader_pin_memory is torch.cuda.is_available()
    assert args.disable_tqdm is True  # pytest captures stderr: not a terminal
    assert ClipLoraTrainingArguments(output_dir=str(tmp_path), disable_tqdm=False).disable_tqdm is False


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_image_check_draws_a_bar_on_a_terminal_only(image_root, tmp_path, monkeypatch):
    val = load_splits("imagenette", data_dir=str(image_root), download=False)["val"]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert image_check.find_bad_images(val, tmp_path / "first") == {}
    assert "Checking images" in terminal.getvalue() and f"{len(val)}/{len(val)}" in terminal.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    assert image_check.find_bad_images(val, tmp_path / "second") == {}
    assert piped.getvalue() == ""
