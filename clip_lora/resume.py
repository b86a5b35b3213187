"""`--resume_from_checkpoint`: Hugging Face's flag, with the checks of the automatic resume (run_dir.prepare).

    check_flag(training_args)                                    # before torch: the path exists, training is on
    chosen_checkpoint(out, training_args, run_config, keys)      # run_dir.prepare: the checkpoint, or one error line

Without the flag a rerun resumes from the newest intact checkpoint of its --output_dir (run_dir.py). With it:
- `--resume_from_checkpoint PATH` resumes from exactly that checkpoint, when its save completed (its `.complete`
  marker), every file still matches the hash recorded then, and the run it belongs to (the run_config.json beside
  it) was made with the same result-shaping flags. Checkpoints of this --output_dir newer than PATH are removed:
  training reaches their steps again and saves them anew (Trainer's rotation would otherwise count them).
- `--resume_from_checkpoint true` (Trainer.train(resume_from_checkpoint=True): the latest) is the automatic
  resume, refused when --output_dir holds no intact checkpoint rather than silently starting from step 0.
Anything else is refused in one line: a missing path, a folder that is no checkpoint, a half-written or damaged
one, one of a run with other flags, an evaluation (--do_train false), or --overwrite_output_dir deleting it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from clip_lora import artifacts
from clip_lora.checkpoints import (
    CHECKPOINT_COMPLETE,
    CHECKPOINT_PREFIX,
    checkpoint_damage,
    checkpoint_folders,
    last_complete_checkpoint,
    step_of,
)
from clip_lora.errors import ArgumentError

logger = logging.getLogger(__name__)

FLAG = "--resume_from_checkpoint"
LATEST = (
    "true",
    "yes",
    "1",
)  # Trainer.train(resume_from_checkpoint=True): the output_dir's latest checkpoint


def wants_latest(value: str | None) -> bool:
    return value is not None and str(value).strip().lower() in LATEST


def check_flag(training_args) -> None:
    """What the file system answers at once (run before torch loads, in validation.check_run)."""
    value = training_args.resume_from_checkpoint
    if value is None:
        return
    if not training_args.do_train:
        raise ArgumentError(
            f"{FLAG} resumes training, and this run trains nothing (--do_train false); drop {FLAG}."
        )
    if wants_latest(value):
        return
    from clip_lora.sources import missing_path_line

    path = Path(value).expanduser()
    if not path.exists():
        raise ArgumentError(missing_path_line(FLAG, value, "checkpoint folder"))
    if not path.is_dir() or step_of(path) is None:
        raise ArgumentError(
            f"{FLAG} {value} is not a checkpoint folder (a run's {CHECKPOINT_PREFIX}-<step>/); pass one of "
            f"{_listing(path.parent if path.is_file() else path)}."
        )


def _listing(folder: Path) -> str:
    shown = [path for _, path in checkpoint_folders(folder)]
    return artifacts.listing(shown) if shown else "the checkpoint-<step> folders inside a run's --output_dir"


def chosen_checkpoint(out: Path, training_args, changed_flags, main_process: bool) -> str | None:
    """The checkpoint the flag names, checked as the automatic resume checks its own; None without the flag.
    `changed_flags(folder)` lists the result-shaping flags that differ from the run in `folder` (run_dir.py)."""
    value = training_args.resume_from_checkpoint
    if value is None:
        return None
    if wants_latest(value):
        latest = last_complete_checkpoint(out, remove_partial=main_process)
        if latest is None:
            raise ArgumentError(
                f"{FLAG} {value}: {artifacts.escape_path(out)} holds no complete checkpoint to resume from; "
                f"drop {FLAG} to start training, or name a checkpoint folder."
            )
        return latest
    path = Path(value).expanduser()
    shown = artifacts.escape_path(path)
    inside = path.resolve().parent == out.resolve()
    if training_args.overwrite_output_dir and inside:
        raise ArgumentError(
            f"{FLAG} {shown} is inside --output_dir, which --overwrite_output_dir would clear first; drop one of them."
        )
    if not (path / CHECKPOINT_COMPLETE).is_file():
        older = last_complete_checkpoint(path.parent, before=path)
        instead = f"resume from {artifacts.escape_path(older)}" if older else "start over without it"
        raise ArgumentError(
            f"{FLAG} {shown} was cut off while it was being saved (no {CHECKPOINT_COMPLETE} marker); {instead}."
        )
    damage = checkpoint_damage(path)
    if damage:
        raise ArgumentError(f"{FLAG} {shown} is damaged ({damage}); resume from another checkpoint.")
    if not (path.parent / artifacts.RUN_CONFIG).is_file():
        raise ArgumentError(
            f"{FLAG} {shown} has no {artifacts.RUN_CONFIG} beside it, so its flags cannot be checked; resume from a "
            "checkpoint inside a clip-lora run's --output_dir."
        )
    changed = changed_flags(path.parent)
    if changed:
        raise ArgumentError(
            f"{FLAG} {shown} belongs to a run made with other flags ({'; '.join(changed)}); rerun with its flags "
            "to resume it."
        )
    if inside and main_process:
        _remove_newer(out, path)
    return str(path)


def _remove_newer(out: Path, chosen: Path) -> None:
    for step, other in checkpoint_folders(out):
        if step > step_of(chosen):
            logger.warning(
                "Removing %s: resuming from %s", artifacts.escape_path(other), artifacts.escape_path(chosen)
            )
            shutil.rmtree(other, ignore_errors=True)
