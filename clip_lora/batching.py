"""The global batch: images per optimizer step = processes x per-device batch x gradient accumulation.

    per_device, accumulation, global_batch = resolve_batch(global_batch=32, per_device=None, accumulation=None, processes=8)
    # -> (4, 1, 32): the seed's batch of 32 on 8 GPUs

What is fixed is the global batch (with the learning rate it defines the experiment); the per-device batch is a
memory choice. Rules, with W processes:
- `--global_batch_size G` and nothing else: per-device G / W, no accumulation.
- G and `--per_device_train_batch_size P`: accumulation G / (W*P) (P is what fits in memory).
- G and `--gradient_accumulation_steps A`: per-device G / (W*A).
- G, P and A together must multiply out to G.
- P without G: the classic Trainer meaning, global = W*P*A.
- neither: the seed's global batch, DEFAULT_GLOBAL_BATCH.
Whatever does not divide evenly is refused with one line that says what would.
"""

from __future__ import annotations

import math
import os

import torch

from clip_lora.errors import ArgumentError

DEFAULT_GLOBAL_BATCH = 32  # the seed experiment: 32 images per step at lr 1e-4, whatever the hardware


def _exact(numerator: int, denominator: int, what: str, hint: str) -> int:
    if denominator < 1 or numerator % denominator or numerator < denominator:
        raise ArgumentError(f"{what}; {hint}")
    return numerator // denominator


def resolve_batch(
    global_batch: int | None, per_device: int | None, accumulation: int | None, processes: int
) -> tuple[int, int, int]:
    """(per-device batch, accumulation steps, global batch) from what the user gave (None = not given)."""
    for flag, value in (
        ("--global_batch_size", global_batch),
        ("--per_device_train_batch_size", per_device),
        ("--gradient_accumulation_steps", accumulation),
    ):
        if value is not None and value < 1:
            raise ArgumentError(f"{flag} {value} must be a positive integer.")
    if global_batch is None and per_device is not None:
        accumulation = accumulation or 1
        return per_device, accumulation, processes * per_device * accumulation
    if global_batch is None:
        global_batch = DEFAULT_GLOBAL_BATCH
    where = f"{processes} process{'es' if processes > 1 else ''}"
    if per_device is not None and accumulation is not None:
        if processes * per_device * accumulation != global_batch:
            raise ArgumentError(
                f"--global_batch_size {global_batch} != {where} x --per_device_train_batch_size {per_device} x "
                f"--gradient_accumulation_steps {accumulation}; drop one of the three and it is derived."
            )
        return per_device, accumulation, global_batch
    if per_device is not None:
        accumulation = _exact(
            global_batch,
            processes * per_device,
            f"--global_batch_size {global_batch} is not a multiple of {where} x --per_device_train_batch_size "
            f"{per_device}",
            "choose a per-device batch that divides it (accumulation is derived) or another --global_batch_size.",
        )
        return per_device, accumulation, global_batch
    accumulation = accumulation or 1
    per_device = _exact(
        global_batch,
        processes * accumulation,
        f"--global_batch_size {global_batch} does not divide over {where} x --gradient_accumulation_steps "
        f"{accumulation}",
        "pass a --global_batch_size that is a multiple of it, or --per_device_train_batch_size.",
    )
    return per_device, accumulation, global_batch


def steps_per_epoch(num_examples: int, global_batch: int, drop_last: bool) -> int:
    """Optimizer steps in one epoch of the step sampler (sampling.StepBatchSampler): the epoch cut into steps of the
    global batch, the short last step counted unless --dataloader_drop_last drops it."""
    full, rest = divmod(num_examples, global_batch)
    return full + (rest > 0 and not drop_last)


def optimizer_steps(
    num_examples: int | None,
    per_device: int,
    processes: int,
    accumulation: int,
    epochs: float,
    max_steps: int,
    drop_last: bool = False,
) -> int | None:
    """Optimizer steps the Trainer will take: `epochs` epochs of `steps_per_epoch` (at least one an epoch, as
    Trainer counts an empty epoch); None for a stream without max_steps."""
    if max_steps > 0:
        return max_steps
    if num_examples is None:
        return None
    per_epoch = max(1, steps_per_epoch(num_examples, processes * per_device * accumulation, drop_last))
    return math.ceil(epochs * per_epoch)


def describe(processes: int, per_device: int, accumulation: int, steps: int | None, device: str) -> str:
    """The run's one line about its batch, e.g. `Batch: 8 processes (cuda) x 4 per device x 1 accumulation step =
    global batch 32; 2810 optimizer steps`."""
    where = f"{processes} process{'es' if processes > 1 else ''} ({device})"
    if processes > 1 and device == "cpu":
        where += " - no CUDA GPU: CPU DDP over gloo"
    return (
        f"Batch: {where} x {per_device} per device x {accumulation} accumulation step"
        f"{'s' if accumulation > 1 else ''} = global batch {processes * per_device * accumulation}; "
        f"{steps if steps is not None else 'max_steps'} optimizer steps"
    )


def batch_line(training_args, num_train: int | None) -> str:
    """`describe` for a run's resolved TrainingArguments and its number of training images (None: streamed)."""
    processes = training_args.world_size
    per_device, accumulation = (
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
    )
    steps = optimizer_steps(
        num_train,
        per_device,
        processes,
        accumulation,
        training_args.num_train_epochs,
        training_args.max_steps,
        drop_last=training_args.dataloader_drop_last,
    )
    return describe(processes, per_device, accumulation, steps, training_args.device.type)


def launched_processes() -> int:
    """How many processes this launch started (WORLD_SIZE, set by torchrun and accelerate launch; 1 otherwise).

    `accelerate launch` with a multi-GPU config on a machine without CUDA is refused (it would quietly become N CPU
    processes); a plain `torchrun --nproc_per_node N` there is CPU DDP on purpose and goes ahead.
    """
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    accelerate_gpu_launch = "ACCELERATE_DYNAMO_BACKEND" in os.environ and not _true(
        os.environ.get("ACCELERATE_USE_CPU", "false")
    )
    if processes > 1 and accelerate_gpu_launch and not torch.cuda.is_available():
        raise ArgumentError(
            f"accelerate launched {processes} GPU processes (a multi-GPU config) but this machine has no CUDA GPU; "
            "on CPU run one process (`clip-lora train ...`) or CPU DDP with `torchrun --nproc_per_node N "
            "train_clip_lora.py ...`."
        )
    return processes


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")
