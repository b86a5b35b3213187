"""Cross-process helpers for a loss over the global batch: rows gathered from every process, gradients back to their owner.

    images = gather_rows(local_image_embeds)          # (sum of every process's rows, D), rank order
    loss = clip_class_loss(images, class_embeds, gather_rows(local_labels), ...)

Every process then computes the same global loss. Backward sums each row's gradient over the processes (each one
differentiated the same loss) and hands it to the process that owns the row; DDP's mean over processes then
turns that sum back into exactly the gradient one process would get for the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class _AllGatherSum(torch.autograd.Function):
    """all_gather of equally shaped tensors, concatenated; backward: the gradient summed over processes, own rows."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows = tensor.shape[0]
        return _all_gather_cat(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # all_reduce works on every backend (gloo has no reduce_scatter); the tensors are (batch, D) embeddings.
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_rows(tensor: torch.Tensor) -> tuple[torch.Tensor, slice]:
    """Every process's rows of `tensor`, in rank order, and the slice that holds this process's own rows.

    Processes may hold different numbers of rows (the last batch of a stream): sizes are exchanged first and the
    padding is cut away again. Gradients (floating tensors) flow back to the owner, summed over processes.
    """
    if world_size() == 1:
        return tensor, slice(0, tensor.shape[0])
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    longest = max(sizes)
    padding = [0, 0] * (tensor.dim() - 1) + [0, longest - tensor.shape[0]]
    padded = F.pad(tensor, padding) if longest > tensor.shape[0] else tensor
    gathered = _AllGatherSum.apply(padded) if padded.requires_grad else _all_gather_cat(padded)
    rows = torch.cat([gathered[r * longest : r * longest + n] for r, n in enumerate(sizes)])
    start = sum(sizes[: rank()])
    return rows, slice(start, start + tensor.shape[0])


def scale_gradient(tensor: torch.Tensor, factor: float) -> torch.Tensor:
    """The same values (exactly); the gradient that flows back through it multiplied by `factor`."""
    detached = tensor.detach()
    return detached + (tensor - detached) * factor


def share_of(loss: torch.Tensor, parts: int) -> torch.Tensor:
    """Value loss / parts (so `parts` of them add up to the loss), gradient that of the whole loss."""
    detached = loss.detach()
    return detached / parts + (loss - detached)


def forget_inference_preparation(trainer) -> None:
    """Undo what an evaluation before training did to the model, so that `train()` wraps it for training.

    Trainer's evaluation loop prepares a model that nothing has prepared yet with accelerate's
    `prepare_model(evaluation_mode=True)`: autocast around forward, torch.compile if configured, and the mark
    `_is_accelerate_prepared`, but no DistributedDataParallel. `train()` then asks accelerate to prepare the model,
    accelerate sees the mark and hands it back as it is, and under N processes gradients are never averaged: each
    process trains its own adapter (train_clip_lora.main() measures the zero-shot baseline before training).
    A model already wrapped for training (DDP, FSDP, DeepSpeed) is left alone.
    """
    model, wrapped = trainer.model, trainer.model_wrapped
    if trainer.is_deepspeed_enabled or _wrapped_for_training(model) or _wrapped_for_training(wrapped):
        return
    for prepared in (model, wrapped):
        prepared.__dict__.pop("_is_accelerate_prepared", None)
    original_forward = model.__dict__.pop("_original_forward", None)
    if original_forward is not None:  # accelerate's autocast wrapper: preparing for training adds it again
        model.forward = original_forward
    trainer.model_wrapped = model  # not an evaluation-only torch.compile wrapper either


def _wrapped_for_training(module) -> bool:
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    inner = getattr(module, "_orig_mod", module)  # under a torch.compile wrapper
    return isinstance(
        inner, (torch.nn.parallel.DistributedDataParallel, FullyShardedDataParallel, FSDPModule)
    )
