"""GPU check (run by bench/gpu_check.sh on a lent H100/H200): is the pipeline GPU-bound, and how long would the real run take?

    python bench/gpu_check.py --out $OUT/gpu_results.json                                   # on the GPU machine
    python bench/gpu_check.py --cpu --tiny --train-per-class 4 --val-per-class 2 --steps 2 \\
        --warmup 1 --batch-sizes 4 --precisions fp32 --out /tmp/gpu_dry.json                # CPU dry run of this file

ViT-B/16-shaped CLIP with random weights + LoRA at the seed config, the project's ClipLoraTrainer, the `cached` data
path (preprocessing.py) over generated ~500x375 JPEGs, loader defaults from arguments.py. For each precision and
batch size: training img/s, the data path's standalone img/s, the fraction of step time the GPU waits for data
(each step's CUDA work is synchronised at its end, so the gap until the next step starts is time the GPU had nothing
to do: an upper bound), peak GPU memory; then evaluation img/s and the projected 10-epoch ImageNette run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from bench.common import FULL_SIZE, TEMPLATE, splits_for, tokenizer_and_processor, vit_b16_lora  # noqa: E402
from clip_lora.arguments import ClipLoraTrainingArguments, default_loader_workers  # noqa: E402
from clip_lora.preprocessing import prepare_splits  # noqa: E402
from clip_lora.testing_utils import IMAGENETTE_WNIDS  # noqa: E402
from clip_lora.trainer import ClipLoraTrainer  # noqa: E402
from collator import ClipClassificationCollator  # noqa: E402

# ImageNette (imagenette2, any size): 9469 train / 3925 val; the project carves 5% of train for dev.
IMAGENETTE = {"train": 9469, "val": 3925, "epochs": 10, "dev_ratio": 0.05}


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


class StepClock(TrainerCallback):
    """compute_s: step begin -> end (CUDA synchronised); gap_s: previous step end -> this step begin (data wait)."""

    def __init__(self):
        self.compute_s, self.gap_s, self.last_end, self.begin = [], [], None, None

    def _sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_begin(self, args, state, control, **kwargs):
        self._sync()
        self.last_end = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.begin = time.perf_counter()
        self.gap_s.append(self.begin - self.last_end)

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        self.last_end = time.perf_counter()
        self.compute_s.append(self.last_end - self.begin)


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
    model, train, val, collate, batch: int, precision: str, args, workdir: Path, persistent: bool = False
) -> dict:
    training_args = ClipLoraTrainingArguments(
        dataloader_persistent_workers=persistent and default_loader_workers(not args.cpu) > 0,
        output_dir=str(workdir / f"run-{precision}-{batch}"),
        use_cpu=args.cpu,
        max_steps=args.warmup + args.steps,
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
        num_classes=len(IMAGENETTE_WNIDS),
    )
    clock = StepClock()
    trainer.add_callback(clock)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")
    gap, compute = np.array(clock.gap_s[args.warmup :]), np.array(clock.compute_s[args.warmup :])
    start = time.perf_counter()
    trainer.evaluate(val)
    eval_s = time.perf_counter() - start
    return {
        "precision": precision,
        "batch": batch,
        "workers": training_args.dataloader_num_workers,
        "persistent_workers": training_args.dataloader_persistent_workers,
        "train_img_s": batch * len(gap) / float((gap + compute).sum()),
        "gpu_only_img_s": batch * len(gap) / float(compute.sum()),
        "data_wait_fraction": float(gap.sum() / (gap + compute).sum()),
        "peak_gpu_mem_mb": peak,
        "eval_img_s": len(val) / eval_s,
        "eval_batch": args.eval_batch,
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
    busy = 1 - run["data_wait_fraction"]
    return {
        "minutes": minutes,
        "seconds": seconds,
        "gpu_busy_fraction": busy,
        "goal_met": minutes < 3 and busy >= 0.85,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/gpu_results.json")
    parser.add_argument("--train-per-class", type=int, default=256)
    parser.add_argument("--val-per-class", type=int, default=64)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--precisions", default="bf16,fp16")
    parser.add_argument("--eval-batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cpu", action="store_true", help="run on CPU (dry run of this script)")
    parser.add_argument("--tiny", action="store_true", help="the tiny CLIP (dry run of this script)")
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    if torch.cuda.is_available() and not args.cpu:
        torch.set_float32_matmul_precision("high")  # what main() does on a GPU
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    images = make_images(workdir / "images", args.train_per_class, args.val_per_class)
    tokenizer, processor, _ = tokenizer_and_processor(workdir)
    splits = splits_for(images)
    names = splits["train"].features["label"].names
    workers = default_loader_workers(torch.cuda.is_available() and not args.cpu)
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
    data[f"on_the_fly_b{batch_sizes[-1]}"] = loader_img_s(
        fly["train"], batch_sizes[-1], plain, workers, epochs=1
    )
    model = vit_b16_lora(tiny=args.tiny)
    runs = [
        train_run(model, cached["train"], cached["val"], collate, b, p, args, workdir)
        for p in args.precisions.split(",")
        for b in batch_sizes
    ]
    # The persistent_workers default (off) against on, at the default batch: the epoch/eval worker restarts' cost.
    runs.append(
        train_run(
            model,
            cached["train"],
            cached["val"],
            collate,
            batch_sizes[0],
            args.precisions.split(",")[0],
            args,
            workdir,
            persistent=True,
        )
    )
    for run in runs:
        run["data_img_s"] = data[f"cached_b{run['batch']}"]
        run["projection"] = projection(run, build_img_s)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.cpu else "cpu (dry run)"
    result = {
        "device": device,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "loader_workers": workers,
        "cache_build_img_s": build_img_s,
        "data_path_img_s": data,
        "runs": runs,
        "images": {"train": len(cached["train"]), "val": len(cached["val"])},
        "command": "bash bench/gpu_check.sh",
        "wall_s": time.perf_counter() - begin,
    }
    for run in runs:
        p = run["projection"]
        print(
            f"{run['precision']} batch {run['batch']}{' persistent' if run['persistent_workers'] else ''}: train {run['train_img_s']:.0f} img/s (GPU alone "
            f"{run['gpu_only_img_s']:.0f}), data path {run['data_img_s']:.0f} img/s, GPU waits "
            f"{100 * run['data_wait_fraction']:.1f}% of the step, peak {run['peak_gpu_mem_mb']:.0f} MB, eval "
            f"{run['eval_img_s']:.0f} img/s -> 10-epoch run {p['minutes']:.2f} min, busy "
            f"{100 * p['gpu_busy_fraction']:.0f}% (goal <3 min, >=85%: {'met' if p['goal_met'] else 'NOT met'})"
        )
    print(f"device: {device}; cache build {build_img_s:.0f} img/s; data path {json.dumps(data)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
