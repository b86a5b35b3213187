"""Where pixels come from: decoded and resized every epoch (`on_the_fly`), or once into the datasets cache (`cached`).

    splits, norm = prepare_splits(splits, processor.image_processor, "cached")   # or "on_the_fly", "auto"
    collator = ClipClassificationCollator.from_class_names(tokenizer, class_names, templates, **norm)

`cached`: one datasets `map` decodes each image, converts it to RGB, resizes and center-crops it with the model's own
image processor (rescale and normalise switched off) and stores the (3, H, W) uint8 pixels as raw bytes in an Arrow
file under the datasets cache (~150 KB per 224 px image; raw bytes read ~20x faster than an Array3D column, which
datasets' formatters widen to int64). The file's name is a fingerprint of the split, of the image
files' sizes and modification times, and of every geometry setting of the processor (its class included: the PIL and
torchvision backends resize differently), so a second run reuses it and a changed crop size or resample method builds
a new one. The collator turns uint8 into normalised floats (`image_mean`, `image_std`, `rescale_factor`), so the
pixels equal the on-the-fly path's (tests/test_preprocessing.py). Later epochs read memory-mapped uint8 (no JPEG
decode, no resize): see bench/RESULTS.md for the measured speed-up and why `auto` picks `cached` on a GPU only.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets.fingerprint import Hasher

from clip_lora.data import DataError
from clip_lora.images import decode_rows, make_transform, skip

logger = logging.getLogger(__name__)

PREPROCESSING_MODES = ("auto", "on_the_fly", "cached")
CACHE_VERSION = (
    2  # bump when the stored layout changes: every old cache file is then ignored (2: skip_reason)
)
GEOMETRY_SETTINGS = (
    "do_convert_rgb",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_pad",
)
MAP_BATCH_SIZE = 32
WRITER_BATCH_SIZE = (
    64  # rows buffered before a write: bounds the map's memory (64 x 150 KB), whatever the split size
)


def resolve_mode(mode: str, cuda_available: bool | None = None) -> str:
    """`auto` -> `cached` when a GPU trains (the data path is its wall), else `on_the_fly` (the model is the wall)."""
    if mode not in PREPROCESSING_MODES:
        raise DataError(f"--preprocessing {mode!r} is not one of {', '.join(PREPROCESSING_MODES)}.")
    if mode != "auto":
        return mode
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    return "cached" if cuda_available else "on_the_fly"


def geometry_settings(image_processor) -> dict:
    """The processor settings that decide the stored pixels (not mean/std/rescale: the collator applies those)."""
    settings = {"class": type(image_processor).__name__, "version": CACHE_VERSION}
    for key in GEOMETRY_SETTINGS:
        value = getattr(image_processor, key, None)
        settings[key] = json.loads(json.dumps(value, default=str))  # SizeDict, enums -> plain JSON
    return settings


def normalization(image_processor) -> dict:
    """Collator kwargs that finish what the cache left undone: rescale to [0, 1], then (x - mean) / std."""
    do_normalize = getattr(image_processor, "do_normalize", True)
    mean = list(image_processor.image_mean) if do_normalize else [0.0, 0.0, 0.0]
    std = list(image_processor.image_std) if do_normalize else [1.0, 1.0, 1.0]
    rescale = image_processor.rescale_factor if getattr(image_processor, "do_rescale", True) else 1.0
    return {"image_mean": mean, "image_std": std, "rescale_factor": float(rescale)}


def _files_signature(ds: datasets.Dataset) -> list:
    """Images stored as paths: the fingerprint covers the path strings, not the files, so add their size and mtime."""
    table = ds.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    signature = []
    for row in table["image"]:
        path = row.get("path") if row.get("bytes") is None else None
        if path and os.path.exists(path):
            stat = os.stat(path)
            signature.append((stat.st_size, stat.st_mtime_ns))
    return signature


def _crop_shape(image_processor) -> tuple[int, int, int]:
    crop = getattr(image_processor, "crop_size", None)
    if not getattr(image_processor, "do_center_crop", False) or not crop:
        raise DataError(
            "--preprocessing cached needs a processor that center-crops to a fixed size; "
            "use --preprocessing on_the_fly with this model."
        )
    return 3, int(crop["height"]), int(crop["width"])


def _resize_crop(batch: dict, image_processor) -> dict:
    # The one decode (images.decode_rows: EXIF, bounds, RGB): an image deleted or rewritten since the check is kept
    # as a row with no pixels and its reason, logged and listed each time a batch reads it (UnpackPixels).
    decoded = decode_rows(batch)
    images = [image for image, _ in decoded if image is not None]
    stored = iter(())
    if images:
        pixels = image_processor(images=images, do_rescale=False, do_normalize=False, return_tensors="np")[
            "pixel_values"
        ]
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        stored = iter(pixels)
    return {
        "pixel_values": [next(stored).tobytes() if image is not None else b"" for image, _ in decoded],
        "labels": batch["label"],
        "skip_reason": [reason for _, reason in decoded],
    }


class UnpackPixels:
    """Dataset transform: stored bytes -> (C, H, W) uint8 tensors (no copy: the bytes are memory-mapped Arrow); a
    row stored without pixels (unreadable when the cache was built) -> None, logged and listed in skip_log."""

    def __init__(self, shape: tuple[int, int, int], skip_log: str | Path | None = None):
        self.shape = tuple(shape)
        self.skip_log = skip_log

    def __call__(self, batch: dict) -> dict:
        ids = batch.get("image_id") or [None] * len(batch["pixel_values"])
        reasons = batch.get("skip_reason") or [""] * len(batch["pixel_values"])
        with (
            warnings.catch_warnings()
        ):  # read-only buffer: nothing writes to these tensors (the collator stacks them)
            warnings.simplefilter("ignore", UserWarning)
            pixels = [
                torch.from_numpy(np.frombuffer(b, dtype=np.uint8).reshape(self.shape)) if b else None
                for b in batch["pixel_values"]
            ]
        for image, image_id, reason in zip(pixels, ids, reasons, strict=True):
            if image is None:
                skip(image_id, image_id, reason, self.skip_log)
        return {"pixel_values": pixels, "labels": batch["labels"]}


def cache_pixels(
    ds: datasets.Dataset,
    image_processor,
    cache_dir: str | Path | None = None,
    num_proc: int | None = None,
    skip_log: str | Path | None = None,
) -> datasets.Dataset:
    """One split -> pixel_values (uint8 C x H x W tensors), labels (+ image_id); built once, then read from the cache."""
    fingerprint = Hasher.hash(
        {
            "split": ds._fingerprint,
            "files": _files_signature(ds),
            "settings": geometry_settings(image_processor),
        }
    )
    cache_dir = Path(cache_dir or Path(datasets.config.HF_DATASETS_CACHE) / "clip_lora_pixels")
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file = cache_dir / f"pixels-{fingerprint}.arrow"
    shape = _crop_shape(image_processor)
    features = datasets.Features(
        {
            "pixel_values": datasets.Value("binary"),
            "labels": datasets.Value("int64"),
            "skip_reason": datasets.Value("string"),
            "image_id": ds.features["image_id"],
        }
    )
    num_proc = num_proc if num_proc and len(ds) >= 4 * WRITER_BATCH_SIZE * num_proc else None
    undecoded = ds.cast_column("image", datasets.Image(decode=False))  # decoded by images.open_image only
    cached = undecoded.map(
        _resize_crop,
        fn_kwargs={"image_processor": image_processor},
        batched=True,
        batch_size=MAP_BATCH_SIZE,
        remove_columns=["image", "label"],
        features=features,
        cache_file_name=str(cache_file),
        load_from_cache_file=True,
        new_fingerprint=fingerprint,
        writer_batch_size=WRITER_BATCH_SIZE,
        num_proc=num_proc,
        desc="Resizing images once (--preprocessing cached)",
    )
    return cached.with_transform(
        UnpackPixels(shape, skip_log), columns=["pixel_values", "labels", "image_id", "skip_reason"]
    )


def prepare_splits(
    splits: datasets.DatasetDict,
    image_processor,
    mode: str = "auto",
    on_gpu: bool | None = None,
    cache_dir: str | Path | None = None,
    num_proc: int | None = None,
    skip_log: str | Path | None = None,
):
    """Splits ready for the Trainer, and the collator kwargs that normalise them (empty for on_the_fly).
    on_the_fly decodes with images.open_image (the column stays encoded), so an image that became unreadable after
    the check is skipped and appended to skip_log instead of failing the epoch."""
    # A stream (--streaming) is not a map-style Dataset: it transforms itself and cannot be cached; it passes through.
    maps = {name for name, split in splits.items() if isinstance(split, datasets.Dataset)}
    if resolve_mode(mode, on_gpu) == "on_the_fly":
        transform = make_transform(image_processor, skip_log)
        for name in maps:
            splits[name] = splits[name].cast_column("image", datasets.Image(decode=False))
            splits[name].set_transform(transform)
        return splits, {}
    logger.info("Caching resized uint8 pixels under %s", cache_dir or datasets.config.HF_DATASETS_CACHE)
    out = {
        name: cache_pixels(split, image_processor, cache_dir, num_proc, skip_log) if name in maps else split
        for name, split in splits.items()
    }
    return (datasets.DatasetDict(out) if len(maps) == len(out) else out), normalization(image_processor)
