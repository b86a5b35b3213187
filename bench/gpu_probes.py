"""What bench/gpu_check.py measures inside a training run: per-step compute and data-wait time (StepClock), the
share of wall time the GPU runs kernels (KernelBusy, torch.profiler), and the dtype a projection computes in
(DtypeProbe)."""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback


class StepClock(TrainerCallback):
    """compute_s: step begin -> end (CUDA synchronised); gap_s: previous step end -> this step begin (data wait)."""

    def __init__(self, steps: int):
        self.compute_s, self.gap_s, self.last_end, self.begin, self.steps = [], [], None, None, steps

    def _sync(self):
        if torch.cuda.is_available() and len(self.compute_s) < self.steps:
            torch.cuda.synchronize()

    def on_train_begin(self, args, state, control, **kwargs):
        self._sync()
        self.last_end = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        if len(self.compute_s) < self.steps:
            self.begin = time.perf_counter()
            self.gap_s.append(self.begin - self.last_end)

    def on_step_end(self, args, state, control, **kwargs):
        if len(self.compute_s) < self.steps:
            self._sync()
            self.last_end = time.perf_counter()
            self.compute_s.append(self.last_end - self.begin)


class KernelBusy(TrainerCallback):
    """The share of `steps` production steps' wall time in which the GPU runs a kernel (or a copy), from
    torch.profiler's device events, merged where they overlap. The steps run as in training: no synchronisation
    between them (StepClock's per-step sync is over by then), so whatever keeps the GPU idle counts, host dispatch
    and read-backs included, not only waits for data."""

    def __init__(self, start: int, steps: int):
        self.start, self.steps, self.profiler, self.fraction = start, steps, None, None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.steps and state.global_step == self.start:
            torch.cuda.synchronize()
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
            self.profiler.__enter__()
            self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.profiler is not None and state.global_step == self.start + self.steps:
            torch.cuda.synchronize()
            wall_us = (time.perf_counter() - self.t0) * 1e6
            self.profiler.__exit__(None, None, None)
            spans = sorted(
                (e.time_range.start, e.time_range.end)
                for e in self.profiler.events()
                if e.device_type == torch.autograd.DeviceType.CUDA
            )
            busy, end = 0.0, float("-inf")
            for begin, finish in spans:  # the union of the intervals
                busy += max(0.0, finish - max(begin, end))
                end = max(end, finish)
            self.fraction = busy / wall_us
            self.profiler = None


class DtypeProbe:
    """The dtype one image-tower attention projection computes in, per phase ('train', 'eval'): what autocast did."""

    def __init__(self, model):
        self.phase, self.seen = "train", {}
        layer = next(
            m for n, m in model.named_modules() if "vision_model" in n and isinstance(m, torch.nn.Linear)
        )
        self.handle = layer.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.seen.setdefault(self.phase, str(output.dtype).removeprefix("torch."))

    def remove(self):
        self.handle.remove()
