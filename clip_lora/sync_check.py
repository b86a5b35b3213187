"""Data parallelism checked by what it must achieve: every process holds the same gradients and the same weights.

    trainer.add_callback(ReplicaSyncCheck())      # ClipLoraTrainer adds it itself; a no-op with one process

Under N processes each one trains a replica of the adapter on its share of the step; the replicas stay one adapter
only if the gradients are averaged before every optimizer step. Nothing else notices when they are not: each replica
still learns, the loss (computed over the gathered global batch) even logs the same, and only process 0's copy is
saved. So the invariant itself is checked, not the wrapper type (which an evaluation before training, FSDP, a
resume or a new launcher could each change): at the first optimizer step of every `train()` call and at every
checkpoint, a fingerprint of the trainable gradients and weights (one norm per tensor) is all-reduced as max and
min; if they differ, training stops with one line naming the cause. The gradients a checkpoint is checked against
are those of its last step, kept by reference (Trainer drops them before it saves). Cost: one norm per tensor
and two all-reduces of a few hundred floats at step 1 and before each checkpoint, nothing at the other steps; each
multi-process run logs the total as a share of its training time (`python bench/sync_check_cost.py` at the seed's
shape).
"""

from __future__ import annotations

import logging
import time

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from clip_lora.distributed import world_size
from clip_lora.errors import TrainingError

logger = logging.getLogger(__name__)

# Averaged gradients are bit-identical on every process (the all-reduce hands each one the same sums); unsynced
# replicas differ by ~10% and more from the first step. The tolerance only absorbs a non-bitwise reduction.
RELATIVE_TOLERANCE = 1e-5


def fingerprint(tensors: list[torch.Tensor | None]) -> torch.Tensor:
    """One float32 per tensor (its L2 norm; 0 for a missing gradient), on the tensors' device, without a sync."""
    present = [t.detach() for t in tensors if t is not None]
    norms = iter(torch._foreach_norm(present) if present else [])
    device = present[0].device if present else torch.device("cpu")
    zero = torch.zeros((), device=device)
    return torch.stack([next(norms).float() if t is not None else zero for t in tensors])


def spread(values: torch.Tensor) -> float:
    """max over processes of (max - min) / max(|max|, |min|) of each entry: 0 when every process holds the same."""
    if world_size() == 1:
        return 0.0
    high, low = values.clone(), -values
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MAX)
    low = -low
    scale = torch.maximum(high.abs(), low.abs()).clamp_min(torch.finfo(torch.float32).tiny)
    return float(((high - low) / scale).max()) if values.numel() else 0.0


class ReplicaSyncCheck(TrainerCallback):
    """Raises TrainingError when the processes' gradients or trainable weights differ (see the module doc).
    At the end of training it logs what the check cost, as a share of the training time."""

    def __init__(self):
        self._checked_first_step = False
        self._last_step_gradients: list[torch.Tensor | None] | None = None
        # The trainable tensors, listed once per train() call: no walk over the model at every step.
        self._params: list[torch.Tensor] = []
        self._seconds = self._started = 0.0
        self._checks = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._checked_first_step = False  # every train() call (a resumed run included) is checked again
        self._last_step_gradients = None
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._seconds, self._checks, self._started = 0.0, 0, time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        if world_size() == 1:
            return
        # The step's gradient tensors themselves: Trainer's zero_grad drops them (set_to_none) rather than zeroing
        # them, so these keep the last step's values for the next checkpoint, at no cost per step.
        self._last_step_gradients = [p.grad for p in self._params]
        if not self._checked_first_step:
            self._checked_first_step = True
            start = time.perf_counter()
            where = "the first optimizer step"
            self._verify(
                fingerprint(self._last_step_gradients),
                fingerprint(self._params),
                state.global_step + 1,
                where,
            )
            self._seconds += time.perf_counter() - start

    def verify_checkpoint(self, step: int) -> None:
        """Called by every process before checkpoint-`step` is written."""
        if world_size() == 1:
            return
        start = time.perf_counter()
        weights = fingerprint(self._params)
        gradients = self._last_step_gradients
        # no optimizer step in this train() call: nothing to compare but the weights
        gradients = fingerprint(gradients) if gradients is not None else torch.zeros_like(weights)
        self._verify(gradients, weights, step, f"before checkpoint-{step}")
        self._seconds += time.perf_counter() - start

    def on_train_end(self, args, state, control, **kwargs):
        if world_size() > 1 and self._checks:
            share = self._seconds / max(time.perf_counter() - self._started, 1e-9)
            logger.info(
                "Replica check: %d checks that every process holds the same adapter, %.1f ms in all (%.2f%% of "
                "training)",
                self._checks,
                1000 * self._seconds,
                100 * share,
            )

    def _verify(self, gradients: torch.Tensor, weights: torch.Tensor, step: int, where: str) -> None:
        self._checks += 1
        self.verify(gradients, weights, step, where)

    @staticmethod
    def verify(gradients: torch.Tensor, weights: torch.Tensor, step: int, where: str) -> None:
        gradient_spread, weight_spread = spread(gradients), spread(weights)
        processes = world_size()
        if gradient_spread > RELATIVE_TOLERANCE:
            cause = (
                "they are not averaged across processes (the model is not wrapped for data-parallel training), so "
                "each process would train its own adapter"
            )
        elif weight_spread > RELATIVE_TOLERANCE:
            cause = (
                "the gradients agree, so the replicas started from different weights or optimizer states (a "
                "checkpoint not loaded on every process?)"
            )
        else:
            return
        held = "gradients" if gradient_spread > RELATIVE_TOLERANCE else "LoRA weights"
        apart = max(gradient_spread, weight_spread)
        raise TrainingError(
            f"the {processes} processes hold different {held} at step {step} ({where}; up to {apart:.1%} apart): "
            f"{cause}. Stopped before it was saved; this is a bug, please report it with your command (one "
            "process trains correctly meanwhile)."
        )
