"""What the replica check (clip_lora/sync_check.py) costs at the seed's shape, on 2 gloo processes of this machine.

    python bench/sync_check_cost.py        # ~10 s; prints the figures, writes nothing

The trainable tensors are the seed adapter's (LoRA r=16 on q/k/v/out_proj of both ViT-B/16 towers: 192 tensors,
1,966,080 values). Timed after a barrier, so a process waiting for a slower one does not count: what every step pays (keeping
references to its gradient tensors) and one check (two fingerprints, two all-reduces, the verdict). The run's
share = (steps x per-step + checks x check) / (steps x step time), for the 10-epoch seed run (2,810 steps of 32;
11 checks: step 1 and 10 epoch checkpoints) at the step times measured before (bench/RESULTS.md). On a GPU the
fingerprints are device kernels: this CPU's check time bounds theirs from above.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_lora.sync_check import ReplicaSyncCheck, fingerprint  # noqa: E402

STEPS, CHECKS = 2810, 11
STEP_SECONDS = {"H100 bf16 batch 32 (bench/RESULTS.md GPU table, 242 img/s)": 32 / 242, "this CPU": 29.0}


def seed_adapter_shapes() -> list[tuple[int, int]]:
    shapes = []
    for width, layers in ((768, 12), (512, 12)):  # vision, text tower
        shapes += [(16, width), (width, 16)] * 4 * layers  # A and B of q, k, v, out_proj
    return shapes


def best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        dist.barrier()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def worker(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        params = [torch.randn(shape) for shape in seed_adapter_shapes()]
        grads = [torch.randn(shape) for shape in seed_adapter_shapes()]
        assert sum(p.numel() for p in params) == 1_966_080
        step = best_of(20, lambda: [g for g in grads])
        check = best_of(
            20, lambda: ReplicaSyncCheck.verify(fingerprint(grads), fingerprint(params), 1, "bench")
        )
        if rank == 0:
            results.update(step_ms=1000 * step, check_ms=1000 * check)
    finally:
        dist.destroy_process_group()


def main() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.start_processes(worker, args=(port, results), nprocs=2, join=True, start_method="fork")
    print(f"per step (references to the gradients): {results['step_ms']:.4f} ms")
    print(f"one check (2 fingerprints + 2 all-reduces): {results['check_ms']:.3f} ms")
    for name, seconds in STEP_SECONDS.items():
        cost = STEPS * results["step_ms"] / 1000 + CHECKS * results["check_ms"] / 1000
        print(f"share of the 10-epoch seed run, {name}: {100 * cost / (STEPS * seconds):.3f}%")


if __name__ == "__main__":
    main()
