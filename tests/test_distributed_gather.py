"""distributed.py: rows gathered from processes that hold unequal numbers of them (a short last step leaves a process
fewer images or none): every process gets every row exactly once, in rank order, and the slice of its own rows; each
row's gradient comes back to its owner, summed over the processes. scale_gradient and share_of keep the values and
scale the gradient. Checked against plain concatenation and the sum written out, over generated row counts.

Run: python -m pytest tests/test_distributed_gather.py -q   (2 and 3 gloo processes, forked: a few seconds)
"""

from __future__ import annotations

import datetime
import os
import random

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_lora import distributed
from clip_lora.distributed import gather_rows, scale_gradient, share_of
from testing_utils import free_port

# Rows of labels, of embeddings, of something wider: the padding must cover every layout.
SHAPES = ((), (3,), (2, 3))


def generated_cases(processes: int, count: int, seed: int) -> list[list[int]]:
    """Rows per process: uneven draws from 0..5 (0: an empty micro-batch), plus the even and the all-empty case."""
    rng = random.Random(seed)
    cases = [[4] * processes, [0] * processes, [3] + [0] * (processes - 1), [0] * (processes - 1) + [1]]
    while len(cases) < count:
        rows = [rng.randint(0, 5) for _ in range(processes)]
        if len(set(rows)) > 1:
            cases.append(rows)
    return cases


def rows_of(case: int, rank: int, count: int, shape: tuple) -> torch.Tensor:
    """Process `rank`'s rows in case `case`: distinct values any process (and the test) can rebuild."""
    size = count * int(torch.tensor(shape).prod()) if shape else count
    values = torch.arange(size, dtype=torch.float64) + 1000 * case + 100 * rank + 0.5
    return values.reshape(count, *shape)


def weights_of(case: int, rank: int, total: int, shape: tuple) -> torch.Tensor:
    """The weights process `rank` puts on the gathered rows: each process its own, so the gradient sum shows."""
    generator = torch.Generator().manual_seed(7 * case + 1)
    return torch.randn(total, *shape, generator=generator, dtype=torch.float64) * (rank + 1)


def _gather_cases(rank: int, processes: int, port: int, cases, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # A broken gather hangs in a collective; the timeout turns that into an error.
    dist.init_process_group("gloo", rank=rank, world_size=processes, timeout=datetime.timedelta(seconds=60))
    try:
        out = []
        for case, counts in enumerate(cases):
            for shape in SHAPES:
                own = rows_of(case, rank, counts[rank], shape)
                labels, label_slice = gather_rows(own.long())  # no gradient: the plain all_gather path
                leaf = own.clone().requires_grad_(shape != ())
                rows, own_slice = gather_rows(leaf)
                if leaf.requires_grad:
                    (rows * weights_of(case, rank, rows.shape[0], shape)).sum().backward()
                grad = leaf.grad if leaf.requires_grad else None
                out.append((case, shape, rows.detach(), own_slice, labels, label_slice, grad))
        results[rank] = out
        results[f"rank {rank}"] = (distributed.rank(), distributed.world_size())
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=[2, 3], ids=["2 processes", "3 processes"])
def gathered(request):
    processes = request.param
    cases = generated_cases(processes, count=12, seed=processes)
    results = mp.Manager().dict()
    # fork: the children start with torch already imported (spawn would import it again, ~12 s here)
    mp.start_processes(
        _gather_cases,
        args=(processes, free_port(), cases, results),
        nprocs=processes,
        join=True,
        start_method="fork",
    )
    return processes, cases, dict(results)


def test_every_process_gets_every_row_once_in_rank_order_and_its_own_slice(gathered):
    processes, cases, results = gathered
    for rank in range(processes):
        for case, shape, rows, own_slice, labels, label_slice, _ in results[rank]:
            counts = cases[case]
            everyone = torch.cat([rows_of(case, r, counts[r], shape) for r in range(processes)])
            torch.testing.assert_close(rows, everyone, rtol=0, atol=0)
            torch.testing.assert_close(labels, everyone.long(), rtol=0, atol=0)
            start = sum(counts[:rank])
            assert own_slice == label_slice == slice(start, start + counts[rank]), (counts, rank)
            torch.testing.assert_close(rows[own_slice], rows_of(case, rank, counts[rank], shape))


def test_each_process_knows_its_rank_and_the_process_count(gathered):
    processes, _, results = gathered
    assert [results[f"rank {r}"] for r in range(processes)] == [(r, processes) for r in range(processes)]


def test_each_row_gets_its_gradient_summed_over_the_processes_at_its_owner(gathered):
    processes, cases, results = gathered
    for rank in range(processes):
        for case, shape, rows, own_slice, _, _, grad in results[rank]:
            if not shape:
                continue
            # Every process differentiated its own weighted sum of all rows: the owner gets the sum over processes.
            expected = sum(weights_of(case, r, rows.shape[0], shape) for r in range(processes))[own_slice]
            assert grad is not None and grad.shape == expected.shape
            torch.testing.assert_close(grad, expected)


def test_the_generated_cases_are_uneven_and_include_empty_processes():
    for processes in (2, 3):
        cases = generated_cases(processes, count=12, seed=processes)
        assert sum(len(set(c)) > 1 for c in cases) >= 10
        assert any(0 in c and max(c) > 0 for c in cases) and [0] * processes in cases


def test_one_process_keeps_its_rows_as_they_are():
    rows = torch.randn(5, 3, requires_grad=True)
    gathered, own = gather_rows(rows)
    assert gathered is rows and own == slice(0, 5)
    assert (distributed.rank(), distributed.world_size()) == (0, 1)  # no process group: one process, rank 0


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    factor=st.floats(-4, 4, allow_nan=False).filter(lambda f: f != 1.0),
    parts=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_scale_gradient_and_share_of_keep_values_and_scale_gradients(factor, parts, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    scaled = scale_gradient(x, factor)
    assert torch.equal(scaled, x)  # exactly the same values
    (grad,) = torch.autograd.grad((scaled * weights).sum(), x)
    torch.testing.assert_close(grad, factor * weights)
    loss = (x * weights).sum()
    share = share_of(loss, parts)
    torch.testing.assert_close(share, loss / parts)  # `parts` shares add up to the loss
    (grad,) = torch.autograd.grad(share, x)
    torch.testing.assert_close(grad, weights)  # the whole loss's gradient
