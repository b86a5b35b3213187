"""Host work per training step at ViT-B/16 depth: dispatched operations, host-device syncs, host milliseconds.

    python bench/host_step.py                          # ~3 min on 2 CPUs; prints the figures
    python bench/host_step.py --write-results          # also stores them as "after" in bench/host_results.json
                                                       # and rewrites bench/RESULTS.md
    python bench/host_step.py --count-only --write-results   # the counts alone (~1 min; timings kept)
    python bench/host_step.py --label before --write-results   # the same figures for the code before a change
                                                                # (run it from a checkout of that commit)

On a GPU a step whose kernels are small is bound by the host: every dispatched operation costs ~10-20 us of Python
and launch overhead, and every read of a device value waits for the GPU to drain. Neither shows in a CPU step's
seconds at real widths (the matmuls take seconds), so both are counted here instead, deterministically:
- ops: every aten operation dispatched in one production training step (ClipLoraTrainer's loop with the project's
  callbacks: forward, loss, backward, clipping, AdamW, health and replica checks, and fetching the next batch),
  seed shape (both ViT-B/16 towers, 12 layers each, LoRA r=16 on q/k/v/out_proj, batch 32, 10 class prompts), under
  bf16 autocast as on a GPU; and in one evaluation batch. Widths are tiny (32): the operation count does not depend
  on them (checked: the same at real widths), the time does.
- syncs: those of them that read a device value on the host (`.item()`, `float()`, `bool()` of a tensor, `unique`,
  `nonzero`, ...), in a step that does not log.
- host ms: the project's step / a bare loop over the same peft model (forward, the same loss, backward, clipping,
  fused AdamW, a batch already in memory), the two alternating step by step, median of the adjacent ratios; and the
  same with `--torch_compile`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SEED_LORA, Interleave, bare_train_step, tokenizer_and_processor  # noqa: E402
from clip_lora.lean_step import reads_device  # noqa: E402
from clip_lora.testing_utils import IMAGENETTE_WNIDS, vit_b16_clip_config  # noqa: E402

RESULTS = ROOT / "bench" / "host_results.json"
BATCH, CLASSES = 32, 10


class OpCounter(TorchDispatchMode):
    """Every dispatched aten operation by name; `reads`: those that make the host wait (lean_step.reads_device)."""

    def __init__(self):
        super().__init__()
        self.ops, self.reads = Counter(), Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        if reads_device(func, args):
            self.reads[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def seed_shaped_model(tiny_widths: bool = True, image_size: int = 224):
    from transformers import CLIPModel

    from clip_lora.modeling import apply_lora

    config = vit_b16_clip_config()
    if tiny_widths:
        for tower in (config.text_config, config.vision_config):
            tower.hidden_size, tower.intermediate_size, tower.num_attention_heads = 32, 64, 4
        config.projection_dim = 32
    config.vision_config.image_size = image_size
    torch.manual_seed(0)
    return apply_lora(CLIPModel._from_config(config, attn_implementation="sdpa"), **SEED_LORA)


class Images(torch.utils.data.Dataset):
    """`length` uint8 images (the cached path's pixels: the collator normalises them), from 8 distinct ones."""

    def __init__(self, length: int, size: int = 224):
        rng = np.random.default_rng(0)
        self.pixels = [rng.integers(0, 256, (3, size, size), dtype=np.uint8) for _ in range(8)]
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return {"pixel_values": self.pixels[i % 8], "labels": i % CLASSES}


class StepClock(TrainerCallback):
    """Per-step host time (from one step's start to the next's) and, inside `counted` steps, the dispatched ops."""

    def __init__(self, counted=()):
        self.starts, self.counted, self.counts, self.reads, self._mode = [], set(counted), [], [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._close()
        self.starts.append(time.perf_counter())
        if state.global_step in self.counted:
            self._mode = OpCounter()
            self._mode.__enter__()

    def on_train_end(self, args, state, control, **kwargs):
        self._close()
        self.starts.append(time.perf_counter())

    def _close(self):
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.counts.append(self._mode.ops)
            self.reads.append(self._mode.reads)
            self._mode = None


def make_trainer(model, steps: int, workdir: Path, compile_model: bool = False, batch: int = BATCH):
    from clip_lora import health
    from clip_lora.arguments import ClipLoraTrainingArguments
    from clip_lora.trainer import ClipLoraTrainer
    from collator import ClipClassificationCollator

    tokenizer, processor, _ = tokenizer_and_processor(workdir)
    names = [f"class {wnid}" for wnid in IMAGENETTE_WNIDS]
    collate = ClipClassificationCollator.from_class_names(
        tokenizer, names, ["a photo of a {}."], image_mean=processor.image_mean, image_std=processor.image_std
    )
    args = ClipLoraTrainingArguments(
        output_dir=str(workdir / "out"),
        use_cpu=True,
        bf16=True,
        per_device_train_batch_size=BATCH,
        max_steps=steps,
        logging_steps=10_000,
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        dataloader_num_workers=0,
        torch_compile=compile_model,
        warmup_steps=0,
    )
    # What main() passes; a trainer that runs its health check itself declares it.
    callbacks = (
        [] if getattr(ClipLoraTrainer, "checks_health_itself", False) else [health.TrainingHealthCallback()]
    )
    size = model.config.vision_config.image_size
    return ClipLoraTrainer(
        model=model,
        args=args,
        train_dataset=Images(batch * steps, size),
        eval_dataset=Images(batch, size),
        data_collator=collate,
        num_classes=CLASSES,
        callbacks=callbacks,
    )


def count_step(workdir: Path) -> dict:
    """Ops and syncs in steps 3 and 4 of a production run (steps 1-2 warm up), and in one evaluation batch."""
    trainer = make_trainer(seed_shaped_model(), steps=5, workdir=workdir)
    clock = StepClock(counted={2, 3})
    trainer.add_callback(clock)
    trainer.train()
    step = clock.counts[0]
    assert step == clock.counts[1], "the count differs between two identical steps"
    trainer.model.eval()
    batch = trainer.data_collator([trainer.eval_dataset[i] for i in range(BATCH)])
    trainer.prediction_step(trainer.model, batch, prediction_loss_only=False)  # class prompts encoded: warm
    with OpCounter() as evaluation:
        trainer.prediction_step(trainer.model, batch, prediction_loss_only=False)
    return {
        "ops_per_step": sum(step.values()),
        "casts_per_step": step["_to_copy"],
        "syncs_per_step": sum(clock.reads[0].values()),
        "sync_ops": dict(clock.reads[0]),
        "ops_per_eval_batch": sum(evaluation.ops.values()),
        "syncs_per_eval_batch": sum(evaluation.reads.values()),
        "top_ops": dict(step.most_common(12)),  # where the step's operations go
    }


def host_times(workdir: Path, rounds: int, steps: int) -> dict:
    """Median host ms per step at ViT-B/16 depth with compute made negligible (widths 32, batch 4, 32x32 images:
    5 tokens; the operations are the seed's): the project's eager step and a bare eager step, alternating step by
    step (bench/common.py's Interleave) over `rounds` runs; then the project's step with --torch_compile, alternating with the
    same bare eager step (one run: compiling takes minutes on a CPU). Ratios: median over steps of project / bare
    of the adjacent pair, the most robust to a machine whose speed drifts."""
    batch, size = 4, 32
    model = seed_shaped_model(image_size=size)
    inputs = make_trainer(model, 1, workdir, batch=batch).data_collator(
        [Images(batch, size)[i] for i in range(batch)]
    )
    pairs = {"project": [], "compiled": []}
    for name, runs, compiled in (("project", rounds, False), ("compiled", 1, True)):
        for _ in range(runs):
            trained = seed_shaped_model(image_size=size) if compiled else model
            trainer = make_trainer(trained, steps * (rounds if compiled else 1), workdir, compiled, batch)
            optimizer = torch.optim.AdamW(  # fused, as Trainer's default adamw_torch_fused
                [p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True
            )
            bare = Interleave(bare_train_step(model, inputs, CLASSES, optimizer, torch.bfloat16, 1.0))
            trainer.add_callback(bare)
            try:
                trainer.train()
            except Exception as err:  # noqa: BLE001 - the code before --torch_compile worked may not compile
                print(f"{name}: {type(err).__name__}: {err}"[:300])
                break
            skip = 3 if compiled else 2  # warm-up steps (the compiled run's first compiles)
            pairs[name] += list(zip(bare.trainer_s, bare.bare_s, strict=True))[skip:]
    figures = {}
    for name, bare_name in (("project", "bare"), ("compiled", "bare_after_compiled")):
        if pairs[name]:
            figures[f"{name}_ms"] = round(1000 * statistics.median(p for p, _ in pairs[name]), 2)
            figures[f"{bare_name}_ms"] = round(1000 * statistics.median(b for _, b in pairs[name]), 2)
    figures["eager_vs_bare"] = round(statistics.median(p / b for p, b in pairs["project"]), 3)
    if pairs["compiled"]:
        figures["compiled_vs_bare_eager"] = round(statistics.median(p / b for p, b in pairs["compiled"]), 3)
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", default="after", help="'before' (the code before a change) or 'after'")
    parser.add_argument(
        "--write-results", action="store_true", help="store the figures in bench/host_results.json"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="only the (deterministic) counts, ~1 min; with --write-results they replace the stored label's counts "
        "and keep its timings",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import tempfile

    import transformers

    transformers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(sys.stdout):
        figures = count_step(Path(tmp))
        if not args.count_only:
            figures.update(host_times(Path(tmp), args.rounds, args.steps))
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    figures["commit"] = commit.stdout.strip()
    figures["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(figures, indent=1))
    if args.write_results:
        stored = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        stored[args.label] = {**stored.get(args.label, {}), **figures} if args.count_only else figures
        RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
        from bench import report

        report.main(["--write-results"])  # bench/RESULTS.md's host section


if __name__ == "__main__":
    main()
