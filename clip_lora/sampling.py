"""The images of every optimizer step, the same at any number of processes and any accumulation.

    sampler = StepBatchSampler(num_examples=44, per_device=8, processes=2, rank=0, accumulation=1, seed=42)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collator)   # this process's micro-batches
    loader, sampler = step_dataloader(dataset, collator, training_args, per_device=8)   # what the trainer does

An epoch is one seeded permutation of the training set (the one accelerate's seedable sampler draws: seed + epoch),
cut into optimizer steps of `processes x per_device x accumulation` images. A step's images are dealt out in chunks:
chunk `m * processes + p` is micro-batch m of process p. So 1 process x 16, 1 process x 8 x 2 accumulation and
2 processes x 8 train on the same images at every step (for full steps this is exactly accelerate's round-robin).

The last step of an epoch is short when the data set is not a multiple of the global batch. It is shared out as
evenly as possible (chunk sizes differ by at most one) and never padded: accelerate pads each process's shard with
images from the start of the epoch, so under N processes that step would train on repeats one process never sees.
A process may get fewer images, or none at all: every process still yields `accumulation` micro-batches for every
step, so forward, backward and the gradient all-reduce line up everywhere (the trainer runs an empty micro-batch
through the model with no weight in the loss).
"""

from __future__ import annotations

from functools import partial

import torch
from torch.utils.data import DataLoader, Sampler
from transformers import TrainerCallback
from transformers.trainer_utils import seed_worker

from clip_lora.batching import steps_per_epoch
from clip_lora.errors import ArgumentError


def step_chunks(step: list[int], parts: int) -> list[list[int]]:
    """`step` cut into `parts` consecutive chunks whose sizes differ by at most one (equal when it divides)."""
    base, extra = divmod(len(step), parts)
    chunks, start = [], 0
    for part in range(parts):
        end = start + base + (part < extra)
        chunks.append(step[start:end])
        start = end
    return chunks


def epoch_permutation(num_examples: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The epoch's order: `torch.randperm` seeded with seed + epoch (what accelerate's SeedableRandomSampler
    yields for RandomSampler, so one process trains on the images it always did), or 0..n-1 unshuffled."""
    if not shuffle:
        return list(range(num_examples))
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    return torch.randperm(num_examples, generator=generator).tolist()


class StepBatchSampler(Sampler[list[int]]):
    """This process's micro-batches (lists of dataset indices, possibly empty) for one epoch; see the module doc."""

    def __init__(
        self,
        num_examples: int,
        per_device: int,
        processes: int,
        rank: int,
        accumulation: int,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = False,
    ):
        if not 0 <= rank < processes:
            raise ValueError(f"rank {rank} is not one of {processes} processes")
        self.num_examples, self.per_device, self.processes, self.rank = (
            num_examples,
            per_device,
            processes,
            rank,
        )
        self.accumulation, self.seed, self.shuffle, self.drop_last = accumulation, seed, shuffle, drop_last
        self.epoch = 0

    @property
    def global_batch(self) -> int:
        return self.processes * self.per_device * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps an epoch: the short last step counts, unless drop_last drops it."""
        return steps_per_epoch(self.num_examples, self.global_batch, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps_per_epoch * self.accumulation

    def __iter__(self):
        order = epoch_permutation(self.num_examples, self.seed, self.epoch, self.shuffle)
        size = self.global_batch
        for step in range(self.steps_per_epoch):
            chunks = step_chunks(order[step * size : (step + 1) * size], self.processes * self.accumulation)
            for micro in range(self.accumulation):
                yield chunks[micro * self.processes + self.rank]


def step_dataloader(dataset, collate_fn, args, per_device: int) -> tuple[DataLoader, StepBatchSampler]:
    """The training DataLoader of this process (TrainingArguments `args`) over a StepBatchSampler, and the sampler."""
    if args.train_sampling_strategy not in ("random", "sequential"):
        raise ArgumentError(
            f"--train_sampling_strategy {args.train_sampling_strategy} groups text by length; images have none: "
            "use random (the default) or sequential."
        )
    sampler = StepBatchSampler(
        len(dataset),
        per_device=per_device,
        processes=args.world_size,
        rank=args.process_index,
        accumulation=args.gradient_accumulation_steps,
        seed=args.data_seed if args.data_seed is not None else args.seed,
        shuffle=args.train_sampling_strategy == "random",
        drop_last=args.dataloader_drop_last,
    )
    workers = args.dataloader_num_workers
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=args.dataloader_pin_memory and torch.cuda.is_available(),
        persistent_workers=args.dataloader_persistent_workers and workers > 0,
        prefetch_factor=args.dataloader_prefetch_factor if workers > 0 else None,
        multiprocessing_context=args.dataloader_multiprocessing_context if workers > 0 else None,
        worker_init_fn=partial(seed_worker, num_workers=workers, rank=args.process_index),
    )
    return loader, sampler


class SamplerEpoch(TrainerCallback):
    """Tells the step sampler which epoch begins, counted from the optimizer steps taken: a resumed run included,
    whose mid-epoch DataLoader (Trainer's skip_first_batches) no `set_epoch` reaches."""

    sampler: StepBatchSampler | None = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.sampler is not None and self.sampler.steps_per_epoch:
            self.sampler.set_epoch(state.global_step // self.sampler.steps_per_epoch)
