"""The output directory of a run, treated as a transaction.

    last_checkpoint = run_dir.prepare(training_args, run_config)   # step 1: lock, refuse, clear or pick the resume point
    ...                                                             # every artifact through artifacts.atomic_write
    run_dir.mark_finished(output_dir)                               # the very last write

- A lock (flock on `.run.lock`, which names the holder's pid and host): a second run into the same folder stops with
  one line; the kernel drops the lock when its process dies, so a killed run never leaves a lock behind.
- Finished means the completion marker exists; it is written after everything else, so a run cut off at any
  earlier write is an interrupted run, never a finished one.
- `--overwrite_output_dir` clears the old run's files before the new run writes any.
- An interrupted run resumes only with the flags that shape its result; otherwise the rerun refuses, listing them.
- A checkpoint counts when its `.complete` marker exists and every file still matches the sizes and hashes listed
  in it; a damaged newest checkpoint is dropped and the next older one is used.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import socket
from pathlib import Path

from clip_lora import artifacts, resume
from clip_lora.checkpoints import (  # noqa: F401 - re-exported: a run's checkpoints, defined there
    CHECKPOINT_COMPLETE,
    CHECKPOINT_PREFIX,
    checkpoint_damage,
    last_complete_checkpoint,
    write_checkpoint_marker,
)
from clip_lora.errors import ArgumentError

logger = logging.getLogger(__name__)

# Flags that change what a run computes. Everything of ours counts except these; of TrainingArguments only these.
NOT_RESULT_FLAGS = {
    "cache_dir",
    "download",
    "streaming",
    "preprocessing",
    "robustness_eval_dir",
    "control_eval_dir",  # evaluated after training, like the shifted set: a resume may add or change it
    "wise_alpha_list",
    "provenance",  # a record of the run (versions, commit, data fingerprint), not a flag
}
RESULT_TRAINING_FLAGS = (
    "seed",
    "data_seed",
    "learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "warmup_ratio",
    "warmup_steps",
    "optim",
    "optim_args",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "label_smoothing_factor",
    "bf16",
    "fp16",
    "eval_strategy",
    "eval_steps",
    "save_strategy",
    "save_steps",
    "metric_for_best_model",
    "greater_is_better",
    "load_best_model_at_end",
    "do_train",
)

_held: dict[Path, int] = {}  # folder -> fd of the lock this process holds
# The run this process is writing (set by prepare): where a fault's one-line message says the run can resume.
_active: dict = {}


# ---------------------------------------------------------------- the lock
def acquire_lock(output_dir: str | Path) -> None:
    """Take the folder's lock for this process (kept until it exits or release_lock); refuse if another run has it."""
    out = Path(output_dir).resolve()
    release_lock(out)  # a second main() in the same process (tests, sweeps) takes it afresh
    path = out / artifacts.RUN_LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise in_use(out) from None
        # A failed run removes its lock file (abandon): a lock taken on the file it unlinked is no lock; retry.
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    _held[out] = fd


def active_run() -> dict | None:
    """{"output_dir", "do_train", "resume"} of the run this command prepared last, or None."""
    return dict(_active) if _active else None


def forget_active() -> None:
    """A new command starts: no run of it is active yet (a previous command's run is not this one's)."""
    _active.clear()


def abandon() -> None:
    """After a failed run: release its lock, and leave no folder behind that holds nothing but the lock file (the
    folder goes too when this run created it). Everything else (checkpoints, the run config, logs) stays."""
    if not _active:
        return
    out, created = _active["output_dir"], _active["created"]
    _active.clear()
    fd = _held.get(out.resolve()) if out.exists() else None
    try:
        if fd is not None and [p.name for p in out.iterdir()] == [artifacts.RUN_LOCK]:
            (out / artifacts.RUN_LOCK).unlink()  # still holding the lock: nobody can take it mid-removal
            if created:
                out.rmdir()
    except OSError:  # another process wrote there meanwhile, or the disk went away: leave it
        pass
    release_lock(out)


def lock_holder(output_dir: str | Path) -> str:
    try:
        return (Path(output_dir) / artifacts.RUN_LOCK).read_text().strip() or "holder unknown"
    except OSError:
        return "holder unknown"


def release_lock(output_dir: str | Path) -> None:
    fd = _held.pop(Path(output_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


# ---------------------------------------------------------------- finished, overwritten, resumed
def is_finished(output_dir: str | Path) -> bool:
    return (Path(output_dir) / artifacts.RUN_COMPLETE).is_file()


def mark_finished(output_dir: str | Path) -> None:
    artifacts.atomic_write_text(Path(output_dir) / artifacts.RUN_COMPLETE, "finished\n")


def looks_like_run(output_dir: Path) -> bool:
    names = (artifacts.RUN_CONFIG, artifacts.RUN_COMPLETE, artifacts.ALL_RESULTS)
    return any((output_dir / n).exists() for n in names) or any(output_dir.glob(f"{CHECKPOINT_PREFIX}-*"))


def clear_run(output_dir: Path) -> None:
    """Remove an old run's files (the marker first, so a cut-off clear never looks finished); keeps the lock.
    A folder that holds no run of ours is left alone: --overwrite_output_dir pointed at a user's folder deletes nothing."""
    if not looks_like_run(output_dir):
        return
    (output_dir / artifacts.RUN_COMPLETE).unlink(missing_ok=True)
    for entry in sorted(output_dir.iterdir()):
        if entry.name == artifacts.RUN_LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    logger.info(
        "--overwrite_output_dir: removed the previous run's files from %s", artifacts.escape_path(output_dir)
    )


def result_flags(run_config: dict, training_keys: set[str]) -> dict:
    """The part of a run_config that shapes the result (JSON-normalised, as run_config.json stores it)."""
    normal = json.loads(json.dumps(run_config, sort_keys=True, default=str))
    return {
        key: value
        for key, value in normal.items()
        if (key in RESULT_TRAINING_FLAGS) or (key not in training_keys and key not in NOT_RESULT_FLAGS)
    }


def changed_flags(output_dir: Path, run_config: dict, training_keys: set[str]) -> list[str]:
    """'flag old -> new' for every result-shaping flag that differs from the interrupted run's run_config.json."""
    try:
        previous = artifacts.read_json(output_dir / artifacts.RUN_CONFIG)
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return [f"{artifacts.RUN_CONFIG} unreadable"]
    if not isinstance(previous, dict):  # JSON, but no run's record: never resumed from
        return [f"{artifacts.RUN_CONFIG} unreadable"]
    old, new = result_flags(previous, training_keys), result_flags(run_config, training_keys)
    return [
        f"{key} {old.get(key, '(unset)')} -> {new.get(key, '(unset)')}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def prepare(training_args, run_config: dict) -> str | None:
    """Step 1 of a run: the checkpoint to resume from (None: start fresh); ArgumentError when the folder cannot be used."""
    out = Path(training_args.output_dir)
    shown = artifacts.escape_path(out)
    _active.clear()
    created = not out.exists()
    try:  # fail now, not after hours of training, when nothing can be written there
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ArgumentError(
            f"--output_dir {shown} is not writable ({err.strerror or err}); choose another one."
        ) from None
    main_process = training_args.process_index == 0
    _active.update(output_dir=out, created=created, do_train=training_args.do_train, resume=None)
    if main_process:
        acquire_lock(out)
        for leftover in out.glob(f"*{artifacts.ATOMIC_SUFFIX}"):  # a write cut off by a kill: never a result
            leftover.unlink(missing_ok=True)
    keys = set(training_args.to_dict())

    def flags_changed_since(folder: Path) -> list[str]:
        return changed_flags(folder, run_config, keys)

    if training_args.overwrite_output_dir:
        # --resume_from_checkpoint in another run's folder: checked before this one is cleared (resume.py)
        chosen = resume.chosen_checkpoint(out, training_args, flags_changed_since, main_process)
        if main_process:
            clear_run(out)
        _active["resume"] = chosen
        return chosen
    check_reusable(out, training_args.do_train, overwrite=False)
    if not training_args.do_train:
        return None
    changed = flags_changed_since(out)
    if changed:
        raise ArgumentError(
            f"{shown} holds an interrupted run made with other flags ({'; '.join(changed)}); rerun with its flags "
            "to resume it, or pass --overwrite_output_dir to start over."
        )
    if training_args.resume_from_checkpoint is not None:  # the checkpoint the user named (resume.py)
        _active["resume"] = resume.chosen_checkpoint(out, training_args, flags_changed_since, main_process)
    else:
        _active["resume"] = last_complete_checkpoint(out, remove_partial=main_process)
    return _active["resume"]


def check_reusable(output_dir: str | Path, do_train: bool, overwrite: bool) -> None:
    """What the folder's past allows, read from the files alone (the CLI asks before torch loads, prepare again):
    a finished run is not trained into again, another run is not evaluated over, without --overwrite_output_dir."""
    out = Path(output_dir)
    if overwrite:
        return
    if not do_train:
        check_evaluation_target(out)
    elif is_finished(out):
        raise ArgumentError(
            f"{artifacts.escape_path(out)} already holds a finished run; pass --overwrite_output_dir to replace it "
            "or choose another --output_dir."
        )


def check_unlocked(output_dir: str | Path) -> None:
    """Refuse a folder another process holds the lock of, without taking it (the check before torch loads)."""
    out = Path(output_dir).resolve()
    if out in _held:  # this process's own run (a second main() in one process takes it afresh)
        return
    try:
        fd = os.open(out / artifacts.RUN_LOCK, os.O_RDONLY)
    except OSError:  # no lock file (or none readable): acquire_lock judges it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            raise in_use(out) from None
    finally:
        os.close(fd)  # closing drops the probe's shared lock at once


def in_use(out: Path) -> ArgumentError:
    return ArgumentError(
        f"--output_dir {artifacts.escape_path(out)} is in use by another run ({lock_holder(out)}); "
        "wait for it to end or choose another --output_dir."
    )


def check_evaluation_target(out: Path) -> None:
    """An evaluation-only run writes README.md, all_results.json, the predictions and run_config.json: into a folder
    holding another run (finished, or an interrupted training run) only with --overwrite_output_dir. An interrupted
    evaluation is simply redone."""
    if not looks_like_run(out):
        return
    try:
        previous = artifacts.read_json(out / artifacts.RUN_CONFIG)
    except (OSError, ValueError):
        previous = {}
    trained = previous.get("do_train", True) is not False or any(out.glob(f"{CHECKPOINT_PREFIX}-*"))
    if not trained and not is_finished(out):
        return
    what = ("a finished" if is_finished(out) else "an interrupted") + (
        " training run" if trained else " evaluation"
    )
    raise ArgumentError(
        f"--output_dir {artifacts.escape_path(out)} holds {what}; evaluating into it would replace its README.md, "
        "all_results.json, predictions and run_config.json: choose another --output_dir, or pass "
        "--overwrite_output_dir to replace it."
    )
