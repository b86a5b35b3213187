"""Run by tests/test_distributed.py under torchrun: `train_clip_lora.py` with the fix for the zero-shot-before-training
wrapping undone on purpose, so that gradients are never averaged; the replica check must stop the run at step 1.

    python -m torch.distributed.run --nproc_per_node 2 tests/unsynced_launch.py <train_clip_lora.py args>
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_lora import trainer  # noqa: E402
from clip_lora.cli import run  # noqa: E402

trainer.forget_inference_preparation = lambda _trainer: None  # the model stays prepared for evaluation only
sys.exit(run("train", sys.argv[1:]))
