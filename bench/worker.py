"""One measurement in a fresh process, so its peak RSS is its own; prints one JSON line. Called by bench/run.py.

python bench/worker.py data  --data-dir D --train 100 --cache-dir C     # cached data path: build + 2 epochs
python bench/worker.py train --mode lora|full|lora_gc --batch 8         # 2 Trainer steps of the ViT-B/16 shape
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.common import (  # noqa: E402
    TEMPLATE,
    AnonPeak,
    Timer,
    peak_rss_mb,
    splits_for,
    tokenizer_and_processor,
    vit_b16_clip,
)


def data_path(args) -> dict:
    """The project's cached path over `--train` images: build the cache, then read every epoch through a loader."""
    import torch

    from clip_lora.preprocessing import prepare_splits
    from collator import ClipClassificationCollator

    workdir = Path(tempfile.mkdtemp())
    tokenizer, processor, _ = tokenizer_and_processor(workdir)
    with AnonPeak() as anon:
        splits = splits_for(Path(args.data_dir), max_train=args.train, max_eval=args.train // 10)
        names = splits["train"].features["label"].names
        with Timer() as build:
            splits, norm = prepare_splits(splits, processor, "cached", cache_dir=args.cache_dir)
        collate = ClipClassificationCollator.from_class_names(tokenizer, names, [TEMPLATE], **norm)
        loader = torch.utils.data.DataLoader(
            splits["train"], batch_size=args.batch, shuffle=True, collate_fn=collate
        )
        seconds = []
        for _ in range(args.epochs):
            with Timer() as epoch:
                images = sum(len(batch["labels"]) for batch in loader)
            seconds.append(epoch.seconds)
    return {
        "images": images,
        "build_s": build.seconds,
        "epoch_s": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "peak_anon_mb": anon.mb,
    }


def train_memory(args) -> dict:
    """Peak RSS of `--steps` Trainer steps: LoRA, full fine-tuning, or LoRA with gradient checkpointing."""
    import torch

    from bench.common import SEED_LORA
    from clip_lora.arguments import ClipLoraTrainingArguments
    from clip_lora.modeling import apply_lora, count_parameters
    from clip_lora.trainer import ClipLoraTrainer
    from collator import ClipClassificationCollator

    workdir = Path(tempfile.mkdtemp())
    tokenizer, _, _ = tokenizer_and_processor(workdir)
    model = vit_b16_clip(tiny=args.tiny)
    if args.mode in ("lora", "lora_gc"):
        model = apply_lora(model, **SEED_LORA)
    trainable, total = count_parameters(model)
    torch.manual_seed(0)
    # In-memory examples: these figures measure the model's training memory, not the data path (P2_rss_growth does).
    data = [{"pixel_values": torch.randn(3, 224, 224), "labels": i % 10} for i in range(args.batch)]
    collate = ClipClassificationCollator.from_class_names(
        tokenizer, [f"class {i}" for i in range(10)], [TEMPLATE]
    )
    training_args = ClipLoraTrainingArguments(
        output_dir=str(workdir / "out"),
        use_cpu=True,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        logging_steps=1000,
        gradient_checkpointing=args.mode == "lora_gc",
        disable_tqdm=True,
    )
    trainer = ClipLoraTrainer(
        model=model, args=training_args, train_dataset=data, data_collator=collate, num_classes=10
    )
    with Timer() as run:
        result = trainer.train()
    return {
        "mode": args.mode,
        "peak_rss_mb": peak_rss_mb(),
        "train_s": run.seconds,
        "loss": result.training_loss,
        "trainable_params": trainable,
        "total_params": total,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data")
    data.add_argument("--data-dir", required=True)
    data.add_argument("--cache-dir", required=True)
    data.add_argument("--train", type=int, required=True)
    data.add_argument("--epochs", type=int, default=2)
    data.add_argument("--batch", type=int, default=32)
    train = sub.add_parser("train")
    train.add_argument("--mode", choices=("lora", "full", "lora_gc"), required=True)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--steps", type=int, default=2)
    train.add_argument("--tiny", action="store_true", help="the tiny CLIP (dry runs of the bench itself)")
    args = parser.parse_args(argv)
    result = data_path(args) if args.command == "data" else train_memory(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
