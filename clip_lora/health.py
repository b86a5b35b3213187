"""Training health: a run whose gradients or LoRA weights stop being finite stops, in one line, before it saves.

    trainer = ClipLoraTrainer(...)   # owns a TrainingHealth: nothing to add

Trainer hides a NaN/inf loss from its logs (`logging_nan_inf_filter`) and keeps stepping: one non-finite gradient
turns every LoRA weight into NaN, and the run then "finishes" with a broken adapter and a meaningless accuracy.

The check must not make every step wait for the device (on a GPU a read-back costs the step its overlap). So each
optimizer step only *records*, on the device: the step at which the gradient norm (the one clipping computes
anyway; a NaN/inf loss makes it NaN) or the LoRA weights after the update first stopped being finite. The record is
read (one sync) only where the host reads values anyway or before anything is written: when the trainer logs,
before an evaluation, before a checkpoint, and when training ends (before the adapter is saved). A TrainingError
raised there reaches `clip_lora.cli`, which prints it; all_results.json, the "finished run" marker, is never written.
"""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback

from clip_lora.errors import TrainingError
from clip_lora.faults import raise_if_stopped


def advice(args) -> str:
    precision = " or train in fp32 (drop --fp16/--bf16)" if (args.fp16 or args.bf16) else ""
    clip = (
        f"set --max_grad_norm 1.0 (now {args.max_grad_norm})"
        if not args.max_grad_norm or args.max_grad_norm > 1.0
        else "lower --max_grad_norm"
    )
    return f"lower --learning_rate (now {args.learning_rate:g}), {clip}{precision}"


class TrainingHealth(TrainerCallback):
    """Records (on the device) the first step with a non-finite gradient norm or LoRA weight; `check` raises."""

    def __init__(self):
        self._params: list[torch.Tensor] = []
        self._first_bad: dict[str, torch.Tensor] = {}  # "gradients" / "weights" -> step (inf: none yet)
        self._value: dict[str, torch.Tensor] = {}  # the non-finite value first seen

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._params = [
            p for p in model.parameters() if p.requires_grad
        ]  # listed once, not walked every step
        self._first_bad, self._value = {}, {}

    def record_gradient_norm(self, step: int, norm: torch.Tensor) -> None:
        self._record("gradients", step, norm.detach())

    @torch.no_grad()
    def on_optimizer_step(self, args, state, control, **kwargs):
        if self._params:
            norms = torch._foreach_norm(self._params)  # one fused kernel; no copy, no sync
            self._record("weights", state.global_step + 1, torch.linalg.vector_norm(torch.stack(norms)))

    def _record(self, kind: str, step: int, value: torch.Tensor) -> None:
        bad = ~torch.isfinite(value)
        if kind not in self._first_bad:
            self._first_bad[kind] = torch.full((), math.inf, device=value.device)
            self._value[kind] = torch.zeros((), device=value.device)
        new = bad & torch.isinf(self._first_bad[kind])
        self._first_bad[kind] = torch.where(new, step, self._first_bad[kind])
        self._value[kind] = torch.where(new, value.float(), self._value[kind])

    def check(self, args) -> None:
        """Raise TrainingError if anything recorded so far is not finite (reads the record: one sync)."""
        first = {kind: float(step) for kind, step in self._first_bad.items()}
        for kind in sorted(first, key=first.get):
            if math.isfinite(first[kind]):
                value, step = float(self._value[kind]), int(first[kind])
                if kind == "gradients":
                    what = f"the loss or gradient norm is {value} (not finite)"
                else:
                    what = f"the LoRA weights became {value} after the optimizer step"
                raise TrainingError(f"training diverged at step {step}: {what}; {advice(args)}.")

    def on_train_end(self, args, state, control, **kwargs):
        self.check(args)  # before main() saves the adapter


class StopRequestCallback(TrainerCallback):
    """Ctrl-C or SIGTERM stops the run even when the signal's exception was swallowed (it landed inside a library's
    __del__, where Python only prints "Exception ignored"): raised again at the next step (clip_lora/faults.py)."""

    def on_step_end(self, args, state, control, **kwargs):
        raise_if_stopped()

    on_substep_end = on_prediction_step = on_evaluate = on_save = on_step_end
