"""`--resume_from_checkpoint` (Hugging Face's flag, clip_lora/resume.py): a run cut off after its checkpoints,
resumed from the checkpoint the flag names, ends where the uninterrupted run ends; the flag is refused in one line
wherever it cannot apply. Through the command (clip_lora.cli.run), on the small in-process run of tests/conftest.py.

Run: python -m pytest tests/test_resume_flag.py -q
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from clip_lora import artifacts, run_dir
from clip_lora.checkpoints import CHECKPOINT_COMPLETE
from clip_lora.cli import run as run_verb
from testing_utils import assert_same_results, small_argv, user_error


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs, and nothing catches it."""


def _cut_off_after_training(argv, monkeypatch) -> None:
    """The run dies writing its final predictions: both epochs' checkpoints are saved, no result is."""
    original = artifacts.write_predictions

    def killed_at_final_predictions(path, *args, **kwargs):
        if Path(path).name == artifacts.PREDICTIONS:
            raise Killed
        return original(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(artifacts, "write_predictions", killed_at_final_predictions)
        with pytest.raises(Killed):
            run_verb("train", argv)
    run_dir.abandon()


def test_the_named_checkpoint_is_resumed_and_the_run_ends_as_the_uninterrupted_one(
    small_run, tiny_model_dir, tmp_path, monkeypatch, caplog, image_check_cache
):
    data, reference, _ = small_run
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    _cut_off_after_training(small_argv(tiny_model_dir, data, out), monkeypatch)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    # Without the flag the rerun would resume from checkpoint-2; the flag names the first epoch's.
    first = out / "checkpoint-1"
    argv = small_argv(tiny_model_dir, data, out, "--resume_from_checkpoint", str(first))
    assert run_verb("train", argv) == 0
    assert f"Resuming from {first} (--resume_from_checkpoint)" in caplog.text
    assert f"Removing {out / 'checkpoint-2'}: resuming from {first}" in caplog.text  # saved again by epoch 2
    assert_same_results(out, reference)

    # A checkpoint of another run's folder (same flags) resumes into a new --output_dir, with the same result.
    elsewhere = tmp_path / "elsewhere"
    argv = small_argv(tiny_model_dir, data, elsewhere, "--resume_from_checkpoint", str(first))
    assert run_verb("train", argv) == 0
    assert_same_results(elsewhere, reference)

    # `--resume_from_checkpoint true` (Trainer's "latest"): the newest intact checkpoint of --output_dir.
    latest = tmp_path / "latest"
    _cut_off_after_training(small_argv(tiny_model_dir, data, latest), monkeypatch)
    assert (
        run_verb("train", small_argv(tiny_model_dir, data, latest, "--resume_from_checkpoint", "true")) == 0
    )
    assert f"Resuming from {latest / 'checkpoint-2'} (--resume_from_checkpoint)" in caplog.text
    assert_same_results(latest, reference)


@pytest.fixture()
def copied_run(small_run, tmp_path) -> Path:
    """A copy of the small run's folder: its checkpoints (1 and 2) and its run_config.json, to damage freely."""
    _, reference, _ = small_run
    copy = tmp_path / "copied"
    shutil.copytree(reference, copy)
    return copy


def test_every_checkpoint_the_flag_cannot_resume_is_refused_in_one_line(
    small_run, copied_run, tiny_model_dir, tmp_path, capsys, monkeypatch
):
    data, _, _ = small_run
    monkeypatch.setattr(run_dir, "active_run", lambda: None)  # no run of an earlier test is in progress

    def refused(checkpoint, *extra, output_dir=tmp_path / "new", verb="train") -> str:
        argv = small_argv(
            tiny_model_dir, data, output_dir, "--resume_from_checkpoint", str(checkpoint), *extra
        )
        return user_error(argv, capsys, verb)

    flag = "error: --resume_from_checkpoint"
    nowhere = tmp_path / "nowhere" / "checkpoint-3"
    assert refused(nowhere).startswith(f"{flag} {nowhere}: no such checkpoint folder; ")
    assert refused(copied_run).startswith(
        f"{flag} {copied_run} is not a checkpoint folder (a run's checkpoint-<step>/)"
    )
    assert refused(copied_run / "checkpoint-1", verb="eval") == (
        f"{flag} resumes training, and this run trains nothing (--do_train false); drop --resume_from_checkpoint."
    )
    assert refused("true") == (
        f"{flag} true: {tmp_path / 'new'} holds no complete checkpoint to resume from; drop "
        "--resume_from_checkpoint to start training, or name a checkpoint folder."
    )
    assert refused(copied_run / "checkpoint-1", "--learning_rate", "0.5") == (
        f"{flag} {copied_run / 'checkpoint-1'} belongs to a run made with other flags (learning_rate 0.005 -> 0.5); "
        "rerun with its flags to resume it."
    )
    assert refused(copied_run / "checkpoint-1", "--overwrite_output_dir", "true", output_dir=copied_run) == (
        f"{flag} {copied_run / 'checkpoint-1'} is inside --output_dir, which --overwrite_output_dir would clear "
        "first; drop one of them."
    )
    weights = copied_run / "checkpoint-2" / "adapter_model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    assert refused(copied_run / "checkpoint-2") == (
        f"{flag} {copied_run / 'checkpoint-2'} is damaged (adapter_model.safetensors does not match the hash "
        "recorded when it was saved); resume from another checkpoint."
    )
    (copied_run / "checkpoint-2" / CHECKPOINT_COMPLETE).unlink()
    assert refused(copied_run / "checkpoint-2") == (
        f"{flag} {copied_run / 'checkpoint-2'} was cut off while it was being saved (no .complete marker); "
        f"resume from {copied_run / 'checkpoint-1'}."
    )
    (copied_run / artifacts.RUN_CONFIG).unlink()
    assert refused(copied_run / "checkpoint-1").startswith(
        f"{flag} {copied_run / 'checkpoint-1'} has no run_config.json beside it"
    )
    assert not (tmp_path / "new").exists()  # nothing was started
