"""Offline stand-ins for the real thing: a tiny random CLIP and a small learnable image set.

    python -m clip_lora.testing_utils --output_dir runs/demo-assets

writes `runs/demo-assets/model/` (a CLIPModel + CLIPProcessor saved with `save_pretrained`, loadable with
`--model_name_or_path`) and `runs/demo-assets/imagenette/{train,val}/<wnid>/*.JPEG` (loadable with `--data_dir`).
The pipeline treats them exactly like `openai/clip-vit-base-patch16` and the real ImageNette: the tiny model differs
only by its path. Tests and `make demo` both build their assets here, so there is one definition of "tiny".
"""

from __future__ import annotations

import argparse
import colorsys
import itertools
import json
from pathlib import Path

import numpy as np
from PIL import Image

from clip_lora.data import IMAGENETTE_CLASSES

IMAGENETTE_WNIDS = list(IMAGENETTE_CLASSES)  # the ten ImageNette WordNet ids, in label order

TINY_IMAGE_SIZE = 32


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode table (the alphabet every byte-level BPE vocab starts from)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def write_tiny_tokenizer_files(directory: Path) -> None:
    """A byte-level CLIP vocabulary with no merges: every word is spelled out character by character.

    Loaded with `CLIPTokenizer.from_pretrained(directory)` (the constructor path silently breaks in transformers 5).
    """
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(
        json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False)
    )
    (directory / "merges.txt").write_text("#version: 0.2\n")


def tiny_clip_config(vocab_size: int, image_size: int = TINY_IMAGE_SIZE):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        ),
        vision_config=dict(
            image_size=image_size,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        projection_dim=32,
    )


def vit_b16_clip_config():
    """The shape of openai/clip-vit-base-patch16 (random weights when built): parameter counts and benchmarks."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(
            hidden_size=512,
            intermediate_size=2048,
            num_attention_heads=8,
            num_hidden_layers=12,
            vocab_size=49408,
            max_position_embeddings=77,
        ),
        vision_config=dict(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            patch_size=16,
            image_size=224,
        ),
        projection_dim=512,
    )


def build_tiny_clip(output_dir: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised tiny CLIPModel and its CLIPProcessor to `output_dir`; returns the path."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    output_dir = Path(output_dir)
    write_tiny_tokenizer_files(output_dir)
    tokenizer = CLIPTokenizer.from_pretrained(output_dir)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_IMAGE_SIZE},
        crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    )
    torch.manual_seed(seed)
    model = CLIPModel(tiny_clip_config(len(tokenizer)))
    model.save_pretrained(output_dir)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(output_dir)
    return output_dir


def class_color(label: int, num_classes: int) -> np.ndarray:
    """Each class gets its own hue, so a small model can learn the task from colour alone."""
    r, g, b = colorsys.hsv_to_rgb(label / num_classes, 0.9, 0.9)
    return np.array([r, g, b]) * 255.0


def make_image_folder(
    root: str | Path,
    class_dirs: list[str] | None = None,
    train_per_class: int = 20,
    val_per_class: int = 10,
    size: int = 48,
    seed: int = 0,
) -> Path:
    """Write `root/{train,val}/<class>/<i>.JPEG`: per-class hue plus per-image brightness jitter and pixel noise."""
    root = Path(root)
    class_dirs = class_dirs or IMAGENETTE_WNIDS
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(class_dirs):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                base = class_color(label, len(class_dirs)) * rng.uniform(0.7, 1.0)
                pixels = base + rng.normal(0.0, 20.0, size=(size, size, 3))
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                image.save(folder / f"{name}_{split}_{i:04d}.JPEG", quality=95)
    return root


CONTROL_CLASSES = ["apple", "banana", "cherry", "grape"]  # not ImageNette's: the demo's control set


def make_control_folder(
    root: str | Path, class_names: list[str] | None = None, per_class: int = 10, size: int = 48, seed: int = 1
) -> Path:
    """Write `root/<class>/<i>.JPEG` for a control set: hues half-way between the task's, one per class."""
    root = Path(root)
    class_names = class_names or CONTROL_CLASSES
    rng = np.random.default_rng(seed)
    for label, name in enumerate(class_names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = class_color(2 * label + 1, 2 * len(class_names)) * rng.uniform(0.7, 1.0)
            pixels = base + rng.normal(0.0, 20.0, size=(size, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                folder / f"{i:04d}.JPEG", quality=95
            )
    return root


def assert_distinct(places: int | None = None, **numbers) -> None:
    """The precondition of an input that feeds a comparison or a report: no two of the named numbers are equal (at
    `places` decimals when given: what the report prints), so a swap of any two shows in the output. A fixture whose
    numbers coincide (b == c, dev == val) fails here instead of letting that swap pass (issue 29)."""
    shown = {name: round(value, places) if places is not None else value for name, value in numbers.items()}
    same = [(a, b) for (a, x), (b, y) in itertools.combinations(shown.items(), 2) if x == y]
    assert not same, f"these numbers coincide, so exchanging them would not show: {same} in {shown}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="runs/demo-assets")
    parser.add_argument("--train_per_class", type=int, default=20)
    parser.add_argument("--val_per_class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    build_tiny_clip(out / "model", seed=args.seed)
    make_image_folder(
        out / "imagenette",
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        seed=args.seed,
    )
    make_control_folder(out / "control", seed=args.seed + 1)
    print(f"tiny CLIP: {out / 'model'}\nimages:    {out / 'imagenette'}\ncontrol:   {out / 'control'}")


if __name__ == "__main__":
    main()
