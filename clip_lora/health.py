"""Training health: a run whose loss, gradients or LoRA weights stop being finite stops at that step, in one line.

    trainer = ClipLoraTrainer(..., callbacks=[TrainingHealthCallback()])

Trainer hides a NaN/inf loss from its logs (`logging_nan_inf_filter`) and keeps stepping: one non-finite gradient
turns every LoRA weight into NaN, and the run then "finishes" with a broken adapter and a meaningless accuracy. The
callback checks the trainable parameters' gradients before each optimizer step and their values after it (LoRA
parameters only: a few MB, one device sync per step). The TrainingError it raises reaches `clip_lora.cli`, which
prints it; all_results.json, the "finished run" marker of step 8, is never written.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from clip_lora.errors import TrainingError
from clip_lora.faults import raise_if_stopped


def _total_norm(tensors: list[torch.Tensor]) -> float:
    if not tensors:
        return 0.0
    return float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))
    )


def advice(args) -> str:
    precision = " or train in fp32 (drop --fp16/--bf16)" if (args.fp16 or args.bf16) else ""
    clip = (
        f"set --max_grad_norm 1.0 (now {args.max_grad_norm})"
        if not args.max_grad_norm or args.max_grad_norm > 1.0
        else "lower --max_grad_norm"
    )
    return f"lower --learning_rate (now {args.learning_rate:g}), {clip}{precision}"


class TrainingHealthCallback(TrainerCallback):
    """Raises TrainingError at the first step whose gradient norm or updated LoRA weights are not finite."""

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
        norm = _total_norm(grads)
        if not torch.isfinite(torch.tensor(norm)):
            raise TrainingError(
                f"training diverged at step {state.global_step + 1}: the loss or gradient norm is {norm} "
                f"(not finite); {advice(args)}."
            )

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        weights = [p.detach() for p in model.parameters() if p.requires_grad]
        norm = _total_norm(weights)
        if not torch.isfinite(torch.tensor(norm)):
            raise TrainingError(
                f"training diverged at step {state.global_step + 1}: the LoRA weights became {norm} after the "
                f"optimizer step; {advice(args)}."
            )


class StopRequestCallback(TrainerCallback):
    """Ctrl-C or SIGTERM stops the run even when the signal's exception was swallowed (it landed inside a library's
    __del__, where Python only prints "Exception ignored"): raised again at the next step (clip_lora/faults.py)."""

    def on_step_end(self, args, state, control, **kwargs):
        raise_if_stopped()

    on_substep_end = on_prediction_step = on_evaluate = on_save = on_step_end
