"""Images that became unreadable during a run: a decision, not a drift.

    guard = LostImages({"train": (ids, labels), "dev": (ids, labels)}, class_names, skip_log, stop=True)
    trainer.add_callback(guard)          # checked at every epoch's end and before every checkpoint (trainer.py)
    LostImages({"val": (ids, labels)}, ...).lost()["val"]   # {label: images}: the report's "unreadable" column

The pre-training check refuses or skips what is unreadable before the first step. An image that becomes unreadable
later (a disk going bad, a sync rewriting files) is a placeholder row in its batch (placeholders.py), logged and
listed in skipped_images.txt as "unreadable when loaded". Left alone, a class that lost every image trains on
nothing and the run still exits 0 (measured: a class's recall 1.0 -> 0.0). So, counted per split and class from that
list: when a class has lost every one of its images, or a split more than LOST_SHARE of its images, the run stops
with one line naming them and how to resume after the repair (no checkpoint is written from that state), unless
`--on_lost_images continue`, which logs the same line as a warning once and trains on what is left. Under N processes
the main process decides and every process gets the same verdict (one collective, only at these points).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from transformers import TrainerCallback

from clip_lora.artifacts import escape_path
from clip_lora.errors import DataError
from clip_lora.images import LOADED_REASON

logger = logging.getLogger(__name__)

LOST_SHARE = 0.10  # of a split's images, lost during the run, past which it stops


class LostImages(TrainerCallback):
    def __init__(self, splits: dict, class_names: list[str], skip_log: str | Path, stop: bool = True):
        # escaped id -> label per split: skipped_images.txt names images by their escaped id
        self.splits = {
            name: dict(zip(map(escape_path, ids), map(int, labels), strict=True))
            for name, (ids, labels) in splits.items()
        }
        self.sizes = {name: Counter(labels.values()) for name, labels in self.splits.items()}
        self.class_names = class_names
        self.skip_log = Path(skip_log)
        self.stop = stop
        self._warned: set[str] = set()
        self._checked_step: int | None = None  # an epoch's end and its checkpoint share a step: checked once
        # the list as this run found it: a rerun counts its own losses only (the pre-training check's entries, and
        # an earlier attempt's, came before)
        try:
            self._start = self.skip_log.stat().st_size
        except OSError:
            self._start = 0

    def lost(self) -> dict[str, Counter]:
        """{split: Counter(label -> images lost since this was made)}, each image once however often it was loaded."""
        try:
            with open(self.skip_log, "rb") as log:
                log.seek(self._start)
                lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            lines = []
        ids = {
            fields[0]
            for fields in (line.split("\t") for line in lines)
            if len(fields) == 3 and fields[2].startswith(LOADED_REASON)
        }
        return {name: Counter(labels[i] for i in ids if i in labels) for name, labels in self.splits.items()}

    def problem(self) -> str | None:
        """The line that names what was lost past the limits, or None."""
        parts = []
        for name, lost in self.lost().items():
            emptied = [
                self.class_names[label] for label, n in sorted(lost.items()) if n == self.sizes[name][label]
            ]
            total, gone = len(self.splits[name]), sum(lost.values())
            if emptied:
                parts.append(f"{name}: every image of {', '.join(emptied)}")
            if total and gone / total > LOST_SHARE:
                parts.append(
                    f"{name}: {gone} of {total} images ({gone / total:.0%}, over the {LOST_SHARE:.0%} limit)"
                )
        if not parts:
            return None
        return f"images became unreadable during the run ({'; '.join(parts)}); they are listed in {escape_path(self.skip_log)}"

    def check(self, is_main_process: bool, step: int) -> None:
        """Every process, at training step `step`: the main process's verdict; a stop raises DataError on every
        process alike."""
        from clip_lora.distributed import world_size

        if step == self._checked_step:
            return
        self._checked_step = step

        verdict = [self.problem() if is_main_process else None]
        if world_size() > 1:
            import torch.distributed as dist

            dist.broadcast_object_list(verdict, src=0)
        line = verdict[0]
        if line is None:
            return
        if self.stop:
            from clip_lora.faults import resume_clause

            raise DataError(
                f"{line}. Restore or repair them, then {resume_clause()}; or pass --on_lost_images continue to train "
                "on what is left"
            )
        if line not in self._warned and is_main_process:
            self._warned.add(line)
            logger.warning("%s; training goes on (--on_lost_images continue)", line)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.check(state.is_world_process_zero, state.global_step)
