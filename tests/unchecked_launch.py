"""Run by tests/test_placeholders.py under torchrun: a verb of the CLI with the pre-training image check switched off,
so images that are unreadable reach the data loaders, as if deleted or rewritten after the check.

    python -m torch.distributed.run --nproc_per_node 2 tests/unchecked_launch.py eval <args>
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train_clip_lora  # noqa: E402
from clip_lora.cli import run  # noqa: E402

train_clip_lora.verify_splits = lambda splits, *args, **kwargs: splits
sys.exit(run(sys.argv[1], sys.argv[2:]))
