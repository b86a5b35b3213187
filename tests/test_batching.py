"""batching.py over every combination of flags and sizes: the derived per-device batch and accumulation against an
exhaustive search for the integers that multiply out to the global batch; the optimizer steps against a step-by-step
count of the epoch (a short last step counts), fractional epochs and max_steps; the start line's arithmetic.

Run: python -m pytest tests/test_batching.py -q
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_lora.batching import DEFAULT_GLOBAL_BATCH, batch_line, describe, optimizer_steps, resolve_batch
from clip_lora.errors import ArgumentError

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)
maybe = st.one_of(st.none(), st.integers(1, 24), st.sampled_from([0, -1]))


def reference_batch(global_batch, per_device, accumulation, processes):
    """(per-device, accumulation, global) by trying every per-device batch and accumulation that the flags leave
    free; None when no integers fit (or a flag is not positive)."""
    if any(v is not None and v < 1 for v in (global_batch, per_device, accumulation)):
        return None
    if global_batch is None and per_device is not None:  # Trainer's own meaning
        accumulation = accumulation or 1
        return per_device, accumulation, processes * per_device * accumulation
    total = DEFAULT_GLOBAL_BATCH if global_batch is None else global_batch
    devices = [per_device] if per_device else range(1, total + 1)
    # Nothing but the global batch (and maybe the per-device batch) given: accumulation is derived or 1.
    accumulations = [accumulation] if accumulation else (range(1, total + 1) if per_device else [1])
    fits = [(p, a) for p in devices for a in accumulations if processes * p * a == total]
    assert len(fits) <= 1  # the free one is determined
    return (*fits[0], total) if fits else None


@SETTINGS
@given(global_batch=maybe, per_device=maybe, accumulation=maybe, processes=st.integers(1, 8))
def test_the_derived_batch_is_the_only_one_that_multiplies_out(
    global_batch, per_device, accumulation, processes
):
    expected = reference_batch(global_batch, per_device, accumulation, processes)
    if expected is None:
        with pytest.raises(ArgumentError):
            resolve_batch(global_batch, per_device, accumulation, processes)
    else:
        resolved = resolve_batch(global_batch, per_device, accumulation, processes)
        assert resolved == expected and all(type(v) is int for v in resolved)  # 4, not 4.0 per device


def counted_steps(num_examples: int, global_batch: int, drop_last: bool = False) -> int:
    """Optimizer steps of one epoch, counted one step at a time: full steps, then a short one for the rest (none
    with drop_last)."""
    steps, left = 0, num_examples
    while left >= global_batch or (left > 0 and not drop_last):
        left -= global_batch
        steps += 1
    return steps


@SETTINGS
@given(
    num_examples=st.integers(0, 300),
    per_device=st.integers(1, 9),
    processes=st.integers(1, 4),
    accumulation=st.integers(1, 4),
    epochs=st.sampled_from([1, 2, 3, 0.5, 1.5, 2.25, 10]),
    drop_last=st.booleans(),
)
def test_optimizer_steps_count_every_step_of_every_epoch(
    num_examples, per_device, processes, accumulation, epochs, drop_last
):
    per_epoch = max(
        1, counted_steps(num_examples, per_device * processes * accumulation, drop_last)
    )  # an empty epoch steps once (Trainer's count)
    expected = math.ceil(epochs * per_epoch)
    shape = (num_examples, per_device, processes, accumulation, epochs)
    assert optimizer_steps(*shape, max_steps=-1, drop_last=drop_last) == expected
    assert optimizer_steps(*shape, max_steps=0, drop_last=drop_last) == expected
    for max_steps in (1, 7):
        assert (
            optimizer_steps(num_examples, per_device, processes, accumulation, epochs, max_steps) == max_steps
        )
    assert optimizer_steps(None, per_device, processes, accumulation, epochs, max_steps=-1) is None
    assert optimizer_steps(None, per_device, processes, accumulation, epochs, max_steps=3) == 3


@pytest.mark.parametrize(
    ("layout", "line"),
    [
        (
            (1, 32, 1, 300, "cuda"),
            "Batch: 1 process (cuda) x 32 per device x 1 accumulation step = global batch 32",
        ),
        (
            (8, 4, 1, 2810, "cuda"),
            "Batch: 8 processes (cuda) x 4 per device x 1 accumulation step = global batch 32",
        ),
        (
            (2, 4, 2, 5, "cpu"),
            "Batch: 2 processes (cpu) - no CUDA GPU: CPU DDP over gloo x 4 per device x 2 ",
        ),
        (
            (3, 5, 7, None, "cpu"),
            "x 5 per device x 7 accumulation steps = global batch 105; max_steps optimizer",
        ),
        (
            (1, 16, 1, 12, "cpu"),
            "Batch: 1 process (cpu) x 16 per device x 1 accumulation step = global batch 16",
        ),
    ],
)
def test_the_start_line_multiplies_out(layout, line):
    processes, per_device, accumulation, steps, device = layout
    text = describe(processes, per_device, accumulation, steps, device)
    assert line in text
    assert text.endswith(f"; {steps if steps is not None else 'max_steps'} optimizer steps")


def test_the_runs_line_is_described_from_its_training_arguments():
    args = SimpleNamespace(
        world_size=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=3,
        num_train_epochs=2,
        max_steps=-1,
        dataloader_drop_last=False,
        device=SimpleNamespace(type="cpu"),
    )
    steps = optimizer_steps(50, 4, 2, 3, 2, max_steps=-1)  # 50 images, 24 a step: 3 steps an epoch
    assert steps == 6
    assert batch_line(args, 50) == describe(2, 4, 3, 6, "cpu")
    assert batch_line(args, None).endswith("global batch 24; max_steps optimizer steps")  # a stream


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize(
    ("per_device", "processes", "accumulation", "steps_an_epoch"),
    [
        (
            8,
            2,
            1,
            {False: 3, True: 2},
        ),  # 44 images, global batch 16: the short step of 12 counts or is dropped
        (4, 2, 2, {False: 3, True: 2}),  # the same global batch with accumulation
        (2, 3, 4, {False: 2, True: 1}),  # global batch 24: 44 = 24 + 20
    ],
)
def test_the_runs_line_says_the_steps_the_sampler_takes(
    per_device, processes, accumulation, steps_an_epoch, drop_last
):
    """The start line's count is the step sampler's (issue 29: it rounded up while the sampler dropped the short
    step)."""
    from clip_lora.sampling import StepBatchSampler

    num_examples, epochs = 44, 3
    micro_batches = {
        len(
            list(
                StepBatchSampler(
                    num_examples, per_device, processes, rank, accumulation, 0, drop_last=drop_last
                )
            )
        )
        for rank in range(processes)
    }
    assert micro_batches == {steps_an_epoch[drop_last] * accumulation}  # what every process iterates
    args = SimpleNamespace(
        world_size=processes,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=epochs,
        max_steps=-1,
        dataloader_drop_last=drop_last,
        device=SimpleNamespace(type="cpu"),
    )
    assert batch_line(args, num_examples).endswith(f"; {epochs * steps_an_epoch[drop_last]} optimizer steps")


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_the_three_flags_multiply_out_with_the_process_count(processes):
    # 2 per device x 3 accumulation: 6 images a step on one process, 12 on two, 24 on four.
    assert resolve_batch(6 * processes, 2, 3, processes) == (2, 3, 6 * processes)
    for wrong in {6, 12, 24} - {6 * processes}:
        where = f"{processes} process{'es' if processes > 1 else ''}"
        with pytest.raises(ArgumentError, match=f"--global_batch_size {wrong} != {where} x --per_device"):
            resolve_batch(wrong, 2, 3, processes)
