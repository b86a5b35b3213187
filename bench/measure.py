"""The in-process measurements of bench/run.py: the project's path and its bare baseline, side by side, interleaved.

    step = train_step_ratio(model, tokenizer, processor, data_dir, steps=3)   # P1
    data = data_path_speedup(tokenizer, processor, data_dir, workdir)         # P2 (speed)
    ev = eval_ratio(trainer, val_split, batches)                              # P3

Each project figure is measured right next to its baseline (alternating), and the best of the repeats is kept for
both, so load from other processes hits both alike.
"""

from __future__ import annotations

import time
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from transformers import CLIPProcessor

from bench.common import TEMPLATE, Interleave, Timer, bare_train_step, splits_for
from clip_lora.arguments import ClipLoraTrainingArguments
from clip_lora.preprocessing import prepare_splits
from clip_lora.trainer import MAX_LOGIT_SCALE, ClipLoraTrainer, class_embeddings
from collator import ClipClassificationCollator
from metrics import compute_metrics


def _clip(model):
    return model.base_model.model if hasattr(model, "base_model") else model


def train_step_ratio(
    model, tokenizer, processor, data_dir: Path, workdir: Path, steps: int = 3, batch: int = 8
):
    """P1: ClipLoraTrainer step (loader + on-the-fly transform + collator + loss + AdamW) / a bare loop's step."""
    splits = splits_for(data_dir)
    names = splits["train"].features["label"].names
    splits, norm = prepare_splits(splits, processor, "on_the_fly")
    collate = ClipClassificationCollator.from_class_names(tokenizer, names, [TEMPLATE], **norm)
    args = ClipLoraTrainingArguments(
        output_dir=str(workdir / "p1"),
        use_cpu=True,
        max_steps=steps + 1,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        learning_rate=1e-4,
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        logging_steps=1000,
        disable_tqdm=True,
    )
    trainer = ClipLoraTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        data_collator=collate,
        compute_metrics=compute_metrics,
        num_classes=len(names),
    )
    fixed = collate([splits["train"][i] for i in range(batch)])  # the bare loop's batch: already on hand
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    bare_step = bare_train_step(model, fixed, len(names), optimizer)

    timer = Interleave(bare_step)
    trainer.add_callback(timer)
    trainer.train()
    trainer_s, bare_s = timer.trainer_s[1:], timer.bare_s[1:]  # step 0 of each is warm-up
    return (
        {
            "ratio": min(trainer_s) / min(bare_s),
            "trainer_step_s": trainer_s,
            "bare_step_s": bare_s,
            "batch": batch,
        },
        trainer,
        splits,
        collate,
    )


def eval_ratio(trainer, val, collate, repeats: int = 2) -> dict:
    """P3: trainer.evaluate per image (loader + transform + collator + model + metrics) / a bare forward loop."""
    model = trainer.model
    clip = _clip(model)
    n = len(val)
    size = trainer.args.per_device_eval_batch_size
    batches = [collate([val[j] for j in range(i, min(i + size, n))]) for i in range(0, n, size)]

    @torch.no_grad()
    def bare_eval():
        text = clip.get_text_features(
            input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"]
        )
        classes = class_embeddings(text.pooler_output, trainer.num_classes)
        scale = clip.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        for b in batches:
            image = clip.get_image_features(pixel_values=b["pixel_values"]).pooler_output
            (scale * F.normalize(image, dim=-1) @ classes.T).argmax(-1)

    project_s, bare_s = [], []
    for _ in range(repeats):
        model.eval()
        with Timer() as t:
            bare_eval()
        bare_s.append(t.seconds)
        with Timer() as t:
            trainer.evaluate(val)
        project_s.append(t.seconds)
    return {"ratio": min(project_s) / min(bare_s), "evaluate_s": project_s, "bare_s": bare_s, "images": n}


def sdpa_speedup(model, batch: int = 4, repeats: int = 2) -> dict:
    """Image-tower forward with eager attention / with SDPA (the project's default)."""
    clip = _clip(model)
    pixels = torch.randn(batch, 3, 224, 224)
    times = {"sdpa": [], "eager": []}
    clip.eval()
    with torch.no_grad():
        for _ in range(repeats):
            for impl in ("sdpa", "eager"):
                clip.set_attn_implementation(impl)
                with Timer() as t:
                    clip.get_image_features(pixel_values=pixels)
                times[impl].append(t.seconds)
    clip.set_attn_implementation("sdpa")
    return {"ratio": min(times["eager"]) / min(times["sdpa"]), "forward_s": times, "batch": batch}


def _epoch(loader) -> tuple[float, int, float]:
    """(seconds, images, seconds to the first batch: worker start-up when there are workers)."""
    start, images, first = time.perf_counter(), 0, None
    for batch in loader:
        first = time.perf_counter() - start if first is None else first
        images += len(batch["labels"])
    return time.perf_counter() - start, images, first


def data_path_speedup(
    tokenizer, processor, data_dir: Path, workdir: Path, images: int, naive_images: int
) -> dict:
    """P2: the cached path's 2nd epoch (and the other variants) in images/s / naive per-item CLIPProcessor calls."""
    splits = splits_for(data_dir, max_train=images)
    names = splits["train"].features["label"].names
    files = splits["train"].cast_column("image", datasets.Image(decode=False))["image"]
    paths = [row["path"] for row in files][:naive_images]
    naive_processor = CLIPProcessor(image_processor=processor, tokenizer=tokenizer)
    with Timer() as t:
        for path in paths:
            naive_processor(images=Image.open(path), return_tensors="pt")
    naive = len(paths) / t.seconds

    rates, startup = {}, {}
    with Timer() as build:
        cached, norm = prepare_splits(
            splits_for(data_dir, max_train=images), processor, "cached", cache_dir=workdir / "p2-cache"
        )
    collate = ClipClassificationCollator.from_class_names(tokenizer, names, [TEMPLATE], **norm)
    fly, _ = prepare_splits(splits_for(data_dir, max_train=images), processor, "on_the_fly")
    plain = ClipClassificationCollator.from_class_names(tokenizer, names, [TEMPLATE])
    for name, dataset, collator in (
        ("cached", cached["train"], collate),
        ("on_the_fly", fly["train"], plain),
    ):
        for workers in (0, 2):
            loader = DataLoader(
                dataset, batch_size=32, shuffle=True, collate_fn=collator, num_workers=workers
            )
            seconds, n, first = _epoch(loader)
            if name == "cached" and workers == 0:
                rates["cached_epoch1"] = n / (
                    seconds + build.seconds
                )  # the one-time build counts against epoch 1
                seconds, n, first = _epoch(loader)
            key = f"{name}{'_epoch2' if name == 'cached' else ''}_workers{workers}"
            rates[key] = n / seconds
            # Steady state: the batches after the first (worker start-up and the first batch's work excluded).
            rates[f"{key}_steady"] = (n - 32) / (seconds - first)
            startup[key] = first
    return {
        "naive_images_per_s": naive,
        "images_per_s": rates,
        "first_batch_s": startup,
        "images": n,
        "naive_images": len(paths),
        "cache_build_s": build.seconds,
    }
