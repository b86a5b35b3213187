"""sampling.py: every optimizer step trains on the same images at any process count and accumulation, the short last
step included, with no image repeated; full steps are exactly what accelerate dealt out before (so a one-process run
trains on the images it always did).

Run: python -m pytest tests/test_sampling.py -q
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard, SeedableRandomSampler
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import BatchSampler

from clip_lora.batching import optimizer_steps
from clip_lora.errors import ArgumentError
from clip_lora.sampling import SamplerEpoch, StepBatchSampler, step_chunks, step_dataloader


def per_process(num_examples, per_device, processes, accumulation, epoch=0, seed=7, **kwargs):
    """{rank: [micro-batch, ...]} of one epoch."""
    out = {}
    for rank in range(processes):
        sampler = StepBatchSampler(num_examples, per_device, processes, rank, accumulation, seed, **kwargs)
        sampler.set_epoch(epoch)
        out[rank] = list(sampler)
        assert len(out[rank]) == len(sampler)
    return out


def steps_of(batches: dict, processes: int, accumulation: int) -> list[list[int]]:
    """The images of each optimizer step: micro-batch m of every process, m over the accumulation window."""
    window = accumulation
    count = len(batches[0]) // window
    return [
        [i for micro in range(window) for rank in range(processes) for i in batches[rank][s * window + micro]]
        for s in range(count)
    ]


shapes = st.tuples(
    st.integers(1, 120),  # images
    st.integers(1, 9),  # per-device batch
    st.integers(1, 4),  # processes
    st.integers(1, 4),  # accumulation
    st.integers(0, 3),  # epoch
)


@settings(max_examples=300, deadline=None)
@given(shapes)
def test_every_step_holds_the_same_images_at_any_scale(shape):
    num_examples, per_device, processes, accumulation, epoch = shape
    global_batch = per_device * processes * accumulation
    batches = per_process(num_examples, per_device, processes, accumulation, epoch)
    # One process, one micro-batch of the whole global batch: the reference every other layout must reproduce.
    reference = per_process(num_examples, global_batch, 1, 1, epoch)[0]
    steps = steps_of(batches, processes, accumulation)
    assert [sorted(step) for step in steps] == [sorted(batch) for batch in reference]
    # Every image once an epoch: nothing dropped, nothing repeated (accelerate padded the last step with repeats).
    assert sorted(i for step in steps for i in step) == list(range(num_examples))
    # Every process walks through the same number of micro-batches (collectives line up); the steps are the
    # Trainer's count.
    assert {len(b) for b in batches.values()} == {accumulation * len(reference)}
    assert len(steps) == optimizer_steps(num_examples, per_device, processes, accumulation, 1, max_steps=-1)
    for step in steps[:-1]:
        assert len(step) == global_batch
    # Within a step the micro-batches are as even as they can be: full ones hold the per-device batch.
    for s in range(len(steps)):
        sizes = [len(batches[r][s * accumulation + m]) for r in range(processes) for m in range(accumulation)]
        assert max(sizes) - min(sizes) <= 1 and max(sizes) <= per_device


@settings(max_examples=100, deadline=None)
@given(shapes)
def test_full_steps_are_what_accelerate_dealt_out(shape):
    num_examples, per_device, processes, accumulation, epoch = shape
    seed = 11
    # What Trainer + accelerate built before: a seedable random sampler in batches, dealt round-robin to processes.
    sampler = SeedableRandomSampler(range(num_examples), data_seed=seed)
    sampler.set_epoch(epoch)
    batch_sampler = BatchSampler(sampler, per_device, drop_last=False)
    full_batches = (num_examples // (per_device * processes * accumulation)) * accumulation
    for rank in range(processes):
        shard = BatchSamplerShard(batch_sampler, processes, rank, even_batches=False)
        expected = list(shard)[:full_batches]
        sampler.set_epoch(epoch)
        ours = per_process(num_examples, per_device, processes, accumulation, epoch, seed=seed)[rank]
        assert ours[:full_batches] == expected


def test_short_last_step_is_shared_out_without_repeats():
    # 44 images, global batch 16 over 2 processes x 8: steps of 16, 16, 12; the last one 6 + 6, not 8 + 4 + 4 repeats.
    batches = per_process(44, 8, 2, 1)
    assert [len(b) for b in batches[0]] == [8, 8, 6] and [len(b) for b in batches[1]] == [8, 8, 6]
    assert not set(batches[0][2]) & set(batches[1][2])
    # 2 images over 2 processes x 2 micro-batches: two micro-batches are empty, and still yielded.
    tiny = per_process(2, 4, 2, 2)
    assert [[len(b) for b in tiny[r]] for r in (0, 1)] == [[1, 0], [1, 0]]


def test_drop_last_drops_the_short_step_and_sequential_keeps_the_order():
    assert [len(b) for b in per_process(44, 8, 2, 1, drop_last=True)[0]] == [8, 8]
    sequential = per_process(10, 2, 2, 1, shuffle=False)
    assert sequential[0] == [[0, 1], [4, 5], [8]] and sequential[1] == [[2, 3], [6, 7], [9]]


def test_each_epoch_is_a_new_permutation_and_the_seed_matters():
    first, second = (per_process(30, 4, 1, 1, epoch=e)[0] for e in (0, 1))
    assert first != second
    assert per_process(30, 4, 1, 1, seed=1)[0] != per_process(30, 4, 1, 1, seed=2)[0]
    generator = torch.Generator().manual_seed(7 + 1)
    assert [i for b in second for i in b] == torch.randperm(30, generator=generator).tolist()


@pytest.mark.parametrize(
    ("size", "parts", "expected"), [(16, 2, [8, 8]), (12, 2, [6, 6]), (7, 3, [3, 2, 2]), (1, 3, [1, 0, 0])]
)
def test_step_chunks(size, parts, expected):
    chunks = step_chunks(list(range(size)), parts)
    assert [len(c) for c in chunks] == expected
    assert [i for c in chunks for i in c] == list(range(size))


def test_a_rank_outside_the_processes_is_refused():
    with pytest.raises(ValueError, match="rank 2 is not one of 2 processes"):
        StepBatchSampler(10, 2, 2, 2, 1, 0)


def test_a_sampler_never_told_its_epoch_deals_epoch_zero():
    # The module's own example: a StepBatchSampler handed to a DataLoader without set_epoch.
    fresh = list(StepBatchSampler(30, 4, 1, 0, 1, seed=7))
    assert [i for b in fresh for i in b] == torch.randperm(
        30, generator=torch.Generator().manual_seed(7)
    ).tolist()


def _args(**overrides) -> SimpleNamespace:
    """The TrainingArguments fields step_dataloader reads, on this CPU machine."""
    fields = {
        "train_sampling_strategy": "random",
        "world_size": 2,
        "process_index": 1,
        "gradient_accumulation_steps": 3,
        "data_seed": None,
        "seed": 5,
        "dataloader_drop_last": False,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": True,
        "dataloader_persistent_workers": True,
        "dataloader_prefetch_factor": None,
        "dataloader_multiprocessing_context": None,
    }
    return SimpleNamespace(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "seed", "shuffle"),
    [({}, 5, True), ({"data_seed": 9}, 9, True), ({"train_sampling_strategy": "sequential"}, 5, False)],
    ids=["--seed", "--data_seed wins", "sequential"],
)
def test_the_trainers_loader_deals_this_processs_micro_batches(overrides, seed, shuffle):
    dataset = list(range(100, 123))  # 23 rows: the last step of 12 is short
    loader, sampler = step_dataloader(dataset, lambda rows: rows, _args(**overrides), per_device=2)
    assert (sampler.processes, sampler.rank, sampler.accumulation, sampler.per_device) == (2, 1, 3, 2)
    assert (sampler.seed, sampler.shuffle, sampler.drop_last) == (seed, shuffle, False)
    assert loader.pin_memory is torch.cuda.is_available() and loader.num_workers == 0
    expected = per_process(23, 2, 2, 3, seed=seed, shuffle=shuffle)[1]
    assert list(loader) == [[dataset[i] for i in batch] for batch in expected]


@pytest.mark.parametrize("strategy", ["group_by_length", "length"])
def test_a_sampling_strategy_for_text_is_refused(strategy):
    with pytest.raises(ArgumentError, match=f"--train_sampling_strategy {strategy} groups text by length"):
        step_dataloader([0, 1], None, _args(train_sampling_strategy=strategy), per_device=1)


@pytest.mark.parametrize(("global_step", "epoch"), [(0, 0), (5, 1), (9, 1), (10, 2), (47, 9)])
def test_a_resumed_run_tells_the_sampler_its_epoch_from_the_steps_taken(global_step, epoch):
    callback = SamplerEpoch()
    callback.sampler = StepBatchSampler(23, 5, 1, 0, 1, seed=0)  # 23 images, 5 a step: 5 steps an epoch
    callback.on_epoch_begin(None, SimpleNamespace(global_step=global_step), None)
    assert callback.sampler.epoch == epoch


def test_without_a_step_sampler_the_epoch_callback_does_nothing():
    # A streamed train split has no length: Trainer's own loader, no sampler to tell.
    SamplerEpoch().on_epoch_begin(None, SimpleNamespace(global_step=12), None)


@pytest.mark.parametrize("workers", [0, 1])
def test_worker_options_reach_the_loader_only_with_workers(workers):
    args = _args(dataloader_num_workers=workers, dataloader_prefetch_factor=3)
    args.dataloader_multiprocessing_context = "spawn"
    loader, _ = step_dataloader(list(range(8)), None, args, per_device=2)  # built, never iterated: no process
    assert loader.num_workers == workers and loader.persistent_workers is (workers > 0)
    assert loader.prefetch_factor == (3 if workers else None)
    assert (loader.multiprocessing_context is not None) is (workers > 0)


@pytest.mark.parametrize(
    ("drop_last", "global_step", "epoch"),
    [(False, 4, 0), (False, 5, 1), (False, 14, 2), (True, 3, 0), (True, 4, 1), (True, 14, 3)],
)
def test_the_epoch_is_counted_in_optimizer_steps_not_micro_batches(drop_last, global_step, epoch):
    # 50 images, 2 processes x 2 per device x 3 accumulation = 12 a step: 5 steps an epoch (4 with drop_last), which
    # are 15 (12) micro-batches of each process: an epoch counted from those would begin three times later.
    callback = SamplerEpoch()
    callback.sampler = StepBatchSampler(50, 2, 2, 1, 3, seed=0, drop_last=drop_last)
    assert len(callback.sampler) == {False: 15, True: 12}[drop_last]
    callback.on_epoch_begin(None, SimpleNamespace(global_step=global_step), None)
    assert callback.sampler.epoch == epoch


@pytest.mark.parametrize("drop_last", [False, True])
def test_the_trainers_loader_honours_drop_last(drop_last):
    dataset = list(range(100, 123))  # 23 rows, 2 processes x 2 per device x 3 accumulation: 12 + a short 11
    loader, sampler = step_dataloader(
        dataset, lambda rows: rows, _args(dataloader_drop_last=drop_last), per_device=2
    )
    assert sampler.drop_last is drop_last
    batches = list(loader)
    assert (
        len(batches) == {False: 6, True: 3}[drop_last]
    )  # this process's micro-batches: 2 steps x 3, or 1 x 3
    expected = per_process(23, 2, 2, 3, seed=5, drop_last=drop_last)[1]
    assert batches == [[dataset[i] for i in batch] for batch in expected]
