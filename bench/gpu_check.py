"""GPU check: is the training pipeline GPU-bound, and how long would the seed ImageNette run take on this GPU?

    python bench/gpu_check.py --out runs/gpu-check/gpu_results.json     # on a GPU (bench/gpu_check.sh runs this)
    python bench/gpu_check.py --dry-run --out /tmp/gpu_dry.json         # the same code on CPU, tiny model, tiny data

ViT-B/16-shaped CLIP with random weights + LoRA at the seed config, the project's ClipLoraTrainer, the `cached` data
path (preprocessing.py) over generated ~500x375 JPEGs, loader defaults from arguments.py. For each precision and
batch size, in order of importance (every precision at the first batch size first): training img/s, the data path's
standalone img/s, the fraction of step time the GPU waits for data (each step's CUDA work is synchronised at its end,
so the gap until the next step starts is time the GPU had nothing to do: an upper bound), peak GPU memory, evaluation
img/s, and the projected 10-epoch ImageNette run.

Each run builds its own model and releases the previous one first: accelerate wraps `model.forward` in autocast at
every `prepare` and never unwraps it, so a shared model would run every later precision in the first one's dtype,
and peak memory would include the previous run's leftovers. Evaluation runs under the run's autocast (ClipLoraTrainer's
prediction_step enters accelerate's autocast around the towers). A forward hook records the dtype
that one attention projection actually computes in, in training and in evaluation; a mismatch is a problem.

The JSON is rewritten (atomically) after the set-up and after every run, so a run stopped from outside still leaves
what it measured; `"complete": true` is written only at the very end. Runs that would not end before --time-limit
(counted from the start) are skipped and listed.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers.trainer_callback import PrinterCallback  # noqa: E402

from bench.common import FULL_SIZE, TEMPLATE, splits_for, tokenizer_and_processor, vit_b16_lora  # noqa: E402
from bench.gpu_probes import DtypeProbe, KernelBusy, StepClock  # noqa: E402
from clip_lora.arguments import ClipLoraTrainingArguments, default_loader_workers  # noqa: E402
from clip_lora.preprocessing import prepare_splits  # noqa: E402
from clip_lora.testing_utils import IMAGENETTE_WNIDS  # noqa: E402
from clip_lora.trainer import ClipLoraTrainer  # noqa: E402
from collator import ClipClassificationCollator  # noqa: E402
from metrics import compute_metrics  # noqa: E402

# ImageNette (imagenette2, any size): 9469 train / 3925 val; the project carves 5% of train for dev.
IMAGENETTE = {"train": 9469, "val": 3925, "epochs": 10, "dev_ratio": 0.05}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# --dry-run: the whole check on CPU in well under a minute (figures meaningless; what it checks is that it runs).
# Two loader workers, so the dry run also takes the GPU's multi-process paths (datasets' map, DataLoader workers).
DRY_RUN = dict(
    cpu=True,
    tiny=True,
    train_per_class=4,
    val_per_class=2,
    steps=2,
    warmup=1,
    batch_sizes="4",
    precisions="fp32,bf16",
    eval_batch=8,
    workers=2,
    time_limit=600.0,
)
# Packages whose version and origin are printed first and kept in the JSON.
PACKAGES = [
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "evaluate",
    "huggingface_hub",
    "tokenizers",
    "safetensors",
    "numpy",
    "pyarrow",
    "pandas",
    "fsspec",
    "dill",
    "multiprocess",
    "xxhash",
    "PIL",
]


def versions() -> dict:
    """{name: version} of Python, torch/CUDA, the GPU and PACKAGES, plus {name: folder it was imported from}."""
    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    origin = {}
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
        except Exception as err:  # a missing package is a finding, not a crash
            found[name] = f"missing ({type(err).__name__})"
            continue
        found[name] = getattr(module, "__version__", getattr(module, "VERSION", "?"))
        origin[name] = str(Path(module.__file__).resolve().parent.parent)
    return {"versions": found, "imported_from": origin}


def pickled_by_value(origin: dict) -> list[str]:
    """Installed packages that dill would copy instead of reference (datasets fingerprints transforms with dill).

    dill references a module only if its file lies under sys.prefix (or exec/base prefix) or its path contains
    'site-packages'; any other module reached while hashing is pickled by value, which fails for pyarrow
    ("Can't pickle <class 'MonthDayNano'>"). Wheels installed with `pip --target /tmp/site` are such modules."""
    prefixes = {
        os.path.realpath(getattr(sys, n))
        for n in ("prefix", "exec_prefix", "base_prefix", "base_exec_prefix")
    }
    return [
        name
        for name, folder in origin.items()
        if "site-packages" not in folder and not any(folder.startswith(p) for p in prefixes)
    ]


def _class_jpegs(job) -> None:
    folder, count, seed = job
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):  # smooth random content: decodes like a photo, not like noise
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize(FULL_SIZE, Image.BICUBIC).save(folder / f"{i:05d}.JPEG", quality=90)


def make_images(root: Path, train_per_class: int, val_per_class: int) -> Path:
    jobs = [
        (root / split / wnid, n, 1000 * k + (split == "val"))
        for split, n in (("train", train_per_class), ("val", val_per_class))
        for k, wnid in enumerate(IMAGENETTE_WNIDS)
    ]
    with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        pool.map(_class_jpegs, jobs)
    return root


def release() -> None:
    """Free what the previous run left (model, optimizer, cached blocks) and restart the peak-memory counter."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def loader_img_s(dataset, batch: int, collate, workers: int, epochs: int = 2) -> float:
    """The data path alone: a full epoch through the loader the Trainer would build (last epoch timed)."""
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )
    for _ in range(epochs):
        start = time.perf_counter()
        n = sum(len(b["labels"]) for b in loader)
        seconds = time.perf_counter() - start
    return n / seconds


def train_run(
    train,
    val,
    collate,
    batch: int,
    precision: str,
    args,
    workdir: Path,
    persistent: bool = False,
    compiled: bool = False,
) -> dict:
    """One fresh model through `warmup + steps` timed Trainer steps and `profile_steps` unsynchronised ones (the
    kernel-busy share, on a GPU), then one evaluation of `val` under the run's autocast."""
    release()
    begin = time.perf_counter()
    before = (
        torch.cuda.memory_allocated() / 2**20 if not args.cpu else float("nan")
    )  # the last run's leftovers
    model = vit_b16_lora(tiny=args.tiny)  # fresh: see the module docstring
    probe = DtypeProbe(model)
    training_args = ClipLoraTrainingArguments(
        dataloader_num_workers=args.workers,
        dataloader_persistent_workers=persistent and args.workers > 0,
        output_dir=str(workdir / f"run-{precision}-{batch}{'-compiled' if compiled else ''}"),
        use_cpu=args.cpu,
        max_steps=args.warmup + args.steps + (args.profile_steps if not args.cpu else 0),
        torch_compile=compiled,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=args.eval_batch,
        learning_rate=1e-4,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        logging_steps=10**6,
        disable_tqdm=True,
    )
    trainer = ClipLoraTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        data_collator=collate,
        compute_metrics=compute_metrics,
        num_classes=len(IMAGENETTE_WNIDS),
    )
    trainer.remove_callback(PrinterCallback)  # its per-run log dicts would crowd the summary lines
    gpu = not args.cpu
    clock = StepClock(args.warmup + args.steps)
    kernels = KernelBusy(args.warmup + args.steps, args.profile_steps if gpu else 0)
    for callback in (clock, kernels):
        trainer.add_callback(callback)
    try:
        trainer.train()
        peak = torch.cuda.max_memory_allocated() / 2**20 if gpu else float("nan")
        gap, compute = np.array(clock.gap_s[args.warmup :]), np.array(clock.compute_s[args.warmup :])
        probe.phase = "eval"
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.evaluate(
            val
        )  # ClipLoraTrainer evaluates under the run's autocast; the probe records the dtype
        if gpu:
            torch.cuda.synchronize()
        eval_s = time.perf_counter() - start
        eval_peak = torch.cuda.max_memory_allocated() / 2**20 if gpu else float("nan")
    finally:
        probe.remove()
        del trainer, model
        release()
    expected = str(DTYPES[precision]).removeprefix("torch.")
    return {
        "precision": precision,
        "batch": batch,
        "compiled": compiled,
        "kernel_busy_fraction": kernels.fraction,
        "workers": training_args.dataloader_num_workers,
        "persistent_workers": training_args.dataloader_persistent_workers,
        "steps_timed": len(gap),
        "train_img_s": batch * len(gap) / float((gap + compute).sum()),
        "gpu_only_img_s": batch * len(gap) / float(compute.sum()),
        "data_wait_fraction": float(gap.sum() / (gap + compute).sum()),
        "gpu_mem_before_mb": before,
        "peak_gpu_mem_mb": peak,
        "eval_peak_gpu_mem_mb": eval_peak,
        "eval_img_s": len(val) / eval_s,
        "eval_batch": args.eval_batch,
        "compute_dtype": probe.seen,
        "expected_dtype": expected,
        "dtype_ok": probe.seen.get("train") == expected and probe.seen.get("eval") == expected,
        "wall_s": time.perf_counter() - begin,
    }


def projection(run: dict, build_img_s: float) -> dict:
    """Minutes of the seed run (10 epochs, dev eval each epoch, zero-shot + final val) at the measured rates."""
    train, val, epochs = IMAGENETTE["train"], IMAGENETTE["val"], IMAGENETTE["epochs"]
    dev = round(IMAGENETTE["dev_ratio"] * train)
    train_images, eval_images = epochs * (train - dev), (epochs + 1) * dev + 2 * val
    seconds = {
        "cache_build": (train + val) / build_img_s,
        "train": train_images / run["train_img_s"],
        "eval": eval_images / run["eval_img_s"],
    }
    minutes = sum(seconds.values()) / 60
    # The profiler's kernel-busy share when there is one (a GPU); else 1 - the data wait (an upper bound).
    busy = (
        run["kernel_busy_fraction"]
        if run.get("kernel_busy_fraction") is not None
        else 1 - run["data_wait_fraction"]
    )
    return {
        "minutes": minutes,
        "seconds": seconds,
        "gpu_busy_fraction": busy,
        "goal_met": minutes < 3 and busy >= 0.85,
    }


def summary(run: dict) -> str:
    p = run["projection"]
    return (
        f"{run['precision']} batch {run['batch']}{' compiled' if run.get('compiled') else ''}"
        f"{' persistent workers' if run['persistent_workers'] else ''}: "
        f"train {run['train_img_s']:.0f} img/s (GPU alone {run['gpu_only_img_s']:.0f}), data path "
        f"{run['data_img_s']:.0f} img/s, GPU waits {100 * run['data_wait_fraction']:.1f}% of the step, peak "
        f"{run['peak_gpu_mem_mb']:.0f} MB, eval {run['eval_img_s']:.0f} img/s, computes in "
        f"{run['compute_dtype']} -> 10-epoch run {p['minutes']:.2f} min, busy {100 * p['gpu_busy_fraction']:.0f}% "
        f"(goal <3 min, >=85%: {'met' if p['goal_met'] else 'NOT met'}); run took {run['wall_s']:.0f} s"
    )


def write_json(result: dict, path: Path) -> None:
    """Atomic: a reader (or a copy taken after a kill) sees the previous complete file or this one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)


def plan(
    precisions: list[str], batch_sizes: list[int], workers: int, compile_runs: bool = True
) -> list[tuple[str, int, bool, bool]]:
    """(precision, batch, persistent workers, compiled), most important first: every precision at the first batch
    size, then the larger batches, then `--torch_compile` in the first precision at every batch (it compiles for
    minutes before its first step), then persistent workers off at the first batch (the per-epoch restarts)."""
    runs = [(p, b, workers > 0, False) for b in batch_sizes for p in precisions]
    runs += [(precisions[0], b, workers > 0, True) for b in batch_sizes] if compile_runs else []
    return runs + ([(precisions[0], batch_sizes[0], False, False)] if workers > 0 else [])


def estimate_s(done: list[tuple[int, float]], batch: int) -> float:
    """A run's expected wall time from the (batch, seconds) of those tried: the slowest, scaled up to this batch."""
    return max((seconds * max(1.0, batch / b) for b, seconds in done), default=0.0)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gpu-check/gpu_results.json")
    parser.add_argument("--train-per-class", type=int, default=256)
    parser.add_argument("--val-per-class", type=int, default=64)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--precisions", default="bf16,fp16")
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "--profile-steps", type=int, default=10, help="GPU: steps profiled for the kernel-busy share"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the --torch_compile runs")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=180.0,
        help="seconds from the start after which no further run begins",
    )
    parser.add_argument(
        "--workers", type=int, help="loader workers (default: the project's default on this device)"
    )
    parser.add_argument("--cpu", action="store_true", help="run on CPU")
    parser.add_argument("--tiny", action="store_true", help="the tiny CLIP instead of the ViT-B/16 shape")
    parser.add_argument("--dry-run", action="store_true", help=f"CPU rehearsal; sets defaults {DRY_RUN}")
    if parser.parse_known_args(argv)[0].dry_run:
        parser.set_defaults(**DRY_RUN)  # explicit flags still win
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    out = Path(args.out)
    if not args.cpu and not torch.cuda.is_available():
        sys.exit("error: torch sees no CUDA device here; --cpu (or --dry-run) runs the check on CPU")
    gpu = not args.cpu
    args.workers = default_loader_workers(gpu) if args.workers is None else args.workers
    if gpu:
        torch.set_float32_matmul_precision("high")  # what main() does on a GPU
    found = versions()
    device = torch.cuda.get_device_name() if gpu else "cpu"
    result = {
        "complete": False,
        "dry_run": not gpu,
        "device": device,
        **found,
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "bash bench/gpu_check.sh" if gpu else "DRY_RUN=1 bash bench/gpu_check.sh",
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "runs": [],
        "skipped": [],
        "problems": [],
    }
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found["versions"].items()), flush=True)
    print(f"device: {device}; CPUs: {os.cpu_count()}; time limit {args.time_limit:.0f} s", flush=True)
    by_value = pickled_by_value(found["imported_from"])
    if by_value:
        result["problems"].append(
            f"dill would pickle these packages by value (install them under a path holding "
            f"'site-packages'): {by_value}"
        )
        write_json(result, out)
        sys.exit(f"error: {result['problems'][-1]}")
    write_json(result, out)

    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    images = make_images(workdir / "images", args.train_per_class, args.val_per_class)
    tokenizer, processor, _ = tokenizer_and_processor(workdir)
    splits = splits_for(images)
    names = splits["train"].features["label"].names
    workers = args.workers
    start = time.perf_counter()
    cached, norm = prepare_splits(
        splits, processor, "cached", cache_dir=workdir / "cache", num_proc=workers or None
    )
    build_img_s = sum(len(s) for s in cached.values()) / (time.perf_counter() - start)
    collate = ClipClassificationCollator.from_class_names(tokenizer, names, [TEMPLATE], **norm)
    fly, _ = prepare_splits(splits_for(images), processor, "on_the_fly")
    plain = ClipClassificationCollator.from_class_names(tokenizer, names, [TEMPLATE])
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    data = {f"cached_b{b}": loader_img_s(cached["train"], b, collate, workers) for b in batch_sizes}
    data[f"on_the_fly_b{batch_sizes[0]}"] = loader_img_s(
        fly["train"], batch_sizes[0], plain, workers, epochs=1
    )
    result.update(
        {
            "loader_workers": workers,
            "cache_build_img_s": build_img_s,
            "data_path_img_s": data,
            "images": {"train": len(cached["train"]), "val": len(cached["val"])},
            "setup_s": time.perf_counter() - begin,
        }
    )
    print(
        f"set-up {result['setup_s']:.0f} s: {result['images']} images, cache build {build_img_s:.0f} img/s, "
        f"data path (img/s) {json.dumps({k: round(v) for k, v in data.items()})}",
        flush=True,
    )
    write_json(result, out)

    tried = []  # (batch, seconds) of every run begun, failed ones too
    for precision, batch, persistent, compiled in plan(
        args.precisions.split(","), batch_sizes, workers, not args.no_compile
    ):
        elapsed = time.perf_counter() - begin
        needed = estimate_s(tried, batch)
        if elapsed + needed > args.time_limit:
            result["skipped"].append(
                {
                    "precision": precision,
                    "batch": batch,
                    "persistent_workers": persistent,
                    "compiled": compiled,
                    "reason": f"{elapsed:.0f} s gone + ~{needed:.0f} s > limit {args.time_limit:.0f} s",
                }
            )
            print(f"skipped {precision} batch {batch}: {result['skipped'][-1]['reason']}", flush=True)
            continue
        started = time.perf_counter()
        try:
            run = train_run(
                cached["train"], cached["val"], collate, batch, precision, args, workdir, persistent, compiled
            )
        except Exception as err:  # one run's failure (an fp16 overflow, an OOM) must not cost the others
            traceback.print_exc()
            result["problems"].append(f"{precision} batch {batch} failed: {type(err).__name__}: {err}"[:500])
            write_json(result, out)
            continue
        finally:
            tried.append((batch, time.perf_counter() - started))
        run["data_img_s"] = data[f"cached_b{batch}"]
        run["projection"] = projection(run, build_img_s)
        if not run["dtype_ok"]:
            result["problems"].append(
                f"{precision} batch {batch}: computed in {run['compute_dtype']}, not {run['expected_dtype']}"
            )
        result["runs"].append(run)
        result["wall_s"] = time.perf_counter() - begin
        write_json(result, out)
        print(summary(run), flush=True)

    result.update({"complete": True, "wall_s": time.perf_counter() - begin})
    write_json(result, out)
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}", flush=True)
    print(
        f"complete in {result['wall_s']:.0f} s: {len(result['runs'])} runs, {len(result['skipped'])} skipped; "
        f"wrote {out}",
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(1 if main()["problems"] else 0)
