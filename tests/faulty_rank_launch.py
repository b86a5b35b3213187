"""Run by tests/test_peer_failures.py under torchrun: `clip-lora train` with a fault on ONE process only.

    FAULT_RANK=1 FAULT=unreadable python -m torch.distributed.run --nproc_per_node 2 tests/faulty_rank_launch.py <args>

FAULT (on process FAULT_RANK only; the others run normally):
- unreadable: the first class's train images fail to read (EIO) in the pre-training check, as on a node whose disk
  went bad (the check refuses them: one line, exit 2);
- disk_full: writing fails with ENOSPC at training step 2 (the fault boundary's family: exit 74);
- bug: an unexpected RuntimeError at training step 2 (a traceback on that process);
- killed: SIGKILL at training step 2 (kill -9, the out-of-memory killer: that process says nothing).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_lora import image_check  # noqa: E402
from clip_lora.cli import run  # noqa: E402
from clip_lora.trainer import ClipLoraTrainer  # noqa: E402

FAULT = os.environ["FAULT"]

if os.environ["RANK"] == os.environ["FAULT_RANK"]:
    if FAULT == "unreadable":
        checked = image_check.find_bad_images

        def find_bad_images(ds, *args, **kwargs):
            bad = dict(checked(ds, *args, **kwargs))
            for image_id, label in zip(ds["image_id"], ds["label"], strict=True):
                if label == 0:
                    bad[image_id] = (image_id, "[Errno 5] Input/output error")
            return bad

        image_check.find_bad_images = find_bad_images
    else:
        step = ClipLoraTrainer.training_step

        def training_step(self, *args, **kwargs):
            if self.state.global_step == 1:  # the second step
                if FAULT == "killed":  # kill -9, the out-of-memory killer: no line, no unwinding
                    os.kill(os.getpid(), signal.SIGKILL)
                if FAULT == "disk_full":
                    raise OSError(
                        errno.ENOSPC, os.strerror(errno.ENOSPC), "/tmp/clip-lora-fault/optimizer.pt"
                    )
                raise RuntimeError("an injected bug")
            return step(self, *args, **kwargs)

        ClipLoraTrainer.training_step = training_step

sys.exit(run("train", sys.argv[1:]))
