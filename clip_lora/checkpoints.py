"""A run's checkpoints: complete only once their `.complete` marker exists, and resumed only while intact.

    write_checkpoint_marker(folder, step)           # the last write of a checkpoint: sizes and SHA-256 of its files
    last_complete_checkpoint(output_dir)            # the newest intact checkpoint, or None
    checkpoint_damage(folder)                       # None, or why a checkpoint cannot be trusted

A kill or a full disk mid-save leaves a checkpoint without its marker: never resumed from (and removed on resume);
a file changed after the save no longer matches its hash: that checkpoint is dropped and the next older one used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

from clip_lora import artifacts

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"  # = transformers.trainer_utils.PREFIX_CHECKPOINT_DIR
CHECKPOINT_COMPLETE = ".complete"  # written last, by rename: a checkpoint without it was cut off mid-save


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


def last_complete_checkpoint(
    output_dir: str | Path, remove_partial: bool = False, before: str | Path | None = None
) -> str | None:
    """The newest checkpoint-N in output_dir whose save finished and whose files are intact (older than `before`,
    when given); optionally delete the half-written and damaged ones after it (training reaches their step again
    and rewrites them)."""
    found = checkpoint_folders(output_dir)
    if before is not None:
        found = [
            (step, path) for step, path in found if path.name != Path(before).name and step < _step(before)
        ]
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


def step_of(checkpoint: str | Path) -> int | None:
    """N of a checkpoint-N folder name; None for any other name."""
    match = re.fullmatch(rf"{CHECKPOINT_PREFIX}-(\d+)", Path(checkpoint).name)
    return int(match.group(1)) if match else None


def checkpoint_folders(output_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint-N folder in output_dir, by step: checkpoint-1000 after checkpoint-999."""
    found = (
        (step_of(path), path) for path in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}-*") if path.is_dir()
    )
    return sorted((step, path) for step, path in found if step is not None)


def _step(checkpoint: str | Path) -> int:
    return step_of(checkpoint) or 0
