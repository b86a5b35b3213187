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
import hashlib
import json
import logging
import os
import re
import shutil
import socket
from pathlib import Path

from clip_lora import artifacts
from clip_lora.errors import ArgumentError

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"  # = transformers.trainer_utils.PREFIX_CHECKPOINT_DIR
CHECKPOINT_COMPLETE = ".complete"  # written last, by rename: a checkpoint without it was cut off mid-save
# Flags that change what a run computes. Everything of ours counts except these; of TrainingArguments only these.
NOT_RESULT_FLAGS = {
    "cache_dir",
    "download",
    "streaming",
    "preprocessing",
    "robustness_eval_dir",
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


# ---------------------------------------------------------------- the lock
def acquire_lock(output_dir: str | Path) -> None:
    """Take the folder's lock for this process (kept until it exits or release_lock); refuse if another run has it."""
    out = Path(output_dir).resolve()
    release_lock(out)  # a second main() in the same process (tests, sweeps) takes it afresh
    path = out / artifacts.RUN_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        raise ArgumentError(
            f"--output_dir {artifacts.escape_path(out)} is in use by another run ({lock_holder(out)}); "
            "wait for it to end or choose another --output_dir."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    _held[out] = fd


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
    if main_process:
        acquire_lock(out)
        for leftover in out.glob(f"*{artifacts.ATOMIC_SUFFIX}"):  # a write cut off by a kill: never a result
            leftover.unlink(missing_ok=True)
    if training_args.overwrite_output_dir:
        if main_process:
            clear_run(out)
        return None
    if not training_args.do_train:
        return None
    if is_finished(out):
        raise ArgumentError(
            f"{shown} already holds a finished run; pass --overwrite_output_dir to replace it or choose another --output_dir."
        )
    changed = changed_flags(out, run_config, set(training_args.to_dict()))
    if changed:
        raise ArgumentError(
            f"{shown} holds an interrupted run made with other flags ({'; '.join(changed)}); rerun with its flags "
            "to resume it, or pass --overwrite_output_dir to start over."
        )
    return last_complete_checkpoint(out, remove_partial=main_process)


# ---------------------------------------------------------------- checkpoints
def write_checkpoint_marker(folder: str | Path, step: int) -> None:
    """The `.complete` marker: the step and the size and sha256 of every file, written by rename after them."""
    folder = Path(folder)
    files = {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.name != CHECKPOINT_COMPLETE
        and not path.name.endswith(artifacts.ATOMIC_SUFFIX)
    }
    artifacts.atomic_write_text(
        folder / CHECKPOINT_COMPLETE, json.dumps({"step": step, "files": files}, indent=1)
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_damage(folder: str | Path) -> str | None:
    """None when every file listed in the checkpoint's marker is there with its size and hash; else what is wrong."""
    folder = Path(folder)
    try:
        listed = json.loads((folder / CHECKPOINT_COMPLETE).read_text())["files"]
        # Every entry read up front: a marker no save wrote (torn, edited) is unusable, not a crash mid-resume.
        listed = {name: (int(entry["size"]), str(entry["sha256"])) for name, entry in listed.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its completion marker is unreadable"
    for name, (size, sha256) in listed.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size or _sha256(path) != sha256:
            return f"{name} does not match the hash recorded when it was saved"
    return None


def last_complete_checkpoint(output_dir: str | Path, remove_partial: bool = False) -> str | None:
    """The newest checkpoint-N in output_dir whose save finished and whose files are intact; optionally delete the
    half-written and damaged ones after it (training reaches their step again and rewrites them)."""
    found = sorted(
        (int(m.group(1)), path)
        for path in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}-*")
        if path.is_dir() and (m := re.fullmatch(rf"{CHECKPOINT_PREFIX}-(\d+)", path.name))
    )
    usable = None
    for step, path in reversed(found):
        if not (path / CHECKPOINT_COMPLETE).is_file():
            why = "its save was interrupted"
        elif damage := checkpoint_damage(path):
            why = f"it is damaged ({damage})"
        else:
            usable = (step, path)
            break
        logger.warning("Not resuming from %s: %s", artifacts.escape_path(path), why)
    if usable is None:
        return None
    if remove_partial:
        for step, path in found:
            if step > usable[0]:
                logger.warning("Removing %s", artifacts.escape_path(path))
                shutil.rmtree(path, ignore_errors=True)
    return str(usable[1])
