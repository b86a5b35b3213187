"""One verification pass over every image before training, so a bad file never crashes a run mid-epoch.

    splits = verify_splits(splits, on_bad_image="skip", output_dir="runs/x")   # drops unreadable images, lists them
    bad = find_bad_images(splits["train"])                                      # {image_id: reason}

Each image is opened, `verify()`-ed and decoded, in threads (PIL decodes without the GIL). JPEGs decode at 1/8 scale
(`draft`): the whole entropy-coded stream is still read, so a truncated file fails, but the pixels are 1/64 (on a
6 MP photo 3x faster; on ImageNette-sized images the entropy decoding dominates and it costs about a full decode,
~3 ms). Every frame of an animated image is decoded. An image is bad too when its work is unbounded: decoded pixels
over PIL's decompression-bomb limit, or an aspect ratio beyond images.MAX_ASPECT_RATIO (the resize to the model's
shortest edge would be huge: a 1 KB PNG of 1 x 1,000,000 pixels). Paths in logs, lists and errors are escaped
(artifacts.escape_path), so each record is one line whatever the file name holds.
Results are cached per split (datasets fingerprint + size and mtime of every file), so a rerun checks nothing again.
`skip` logs each bad file, writes `skipped_images.txt` in the output dir and filters them out of the splits;
`error` stops before training with the list.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import PIL
from PIL import Image, ImageOps

from clip_lora import artifacts, progress
from clip_lora.artifacts import escape_path
from clip_lora.download import DataError
from clip_lora.images import MAX_ASPECT_RATIO, geometry_problem

logger = logging.getLogger(__name__)

SKIPPED_IMAGES = artifacts.SKIPPED_IMAGES
CACHE_SUBDIR = "clip_lora_image_check"
CHECK_VERSION = f"2, aspect {MAX_ASPECT_RATIO}"  # in the cache key: a stricter check re-checks everything
MAX_LISTED = 5  # bad files named in the one-line error; the log lists every one


def check_image(source: str | bytes) -> str | None:
    """None when the image (a path or its bytes) opens, decodes in full and costs bounded work; else the reason."""
    try:
        if (len(source) if isinstance(source, bytes) else os.path.getsize(source)) == 0:
            return "empty file (0 bytes)"
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            problem = geometry_problem(image.width, image.height)  # from the header, before any pixel
            if problem:
                return problem
            image.verify()  # structure and checksums (PNG CRCs); leaves the object unusable
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            frames = getattr(image, "n_frames", 1)
            if frames * image.width * image.height > (Image.MAX_IMAGE_PIXELS or float("inf")):
                return (
                    f"{frames} frames of {image.width}x{image.height} exceed PIL's decompression-bomb limit"
                )
            for frame in range(frames):  # every frame: a truncated later frame of a GIF is a bad file too
                image.seek(frame)
                if (
                    image.format == "JPEG"
                ):  # DCT-domain downscale: the whole stream is read, 1/64 of the pixels
                    image.draft(None, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
            ImageOps.exif_transpose(image)  # a broken EXIF block fails here, not in the epoch
    except Image.DecompressionBombError:
        return f"larger than PIL's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS:,} pixels)"
    except PIL.UnidentifiedImageError:
        return "not an image PIL can read (unknown format or corrupt header)"
    # PIL raises OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError ...
    except Exception as err:
        text = " ".join(str(err).split())
        kind = "truncated" if "truncated" in text.lower() or isinstance(err, EOFError) else "corrupt"
        return f"{kind} image data ({type(err).__name__}: {text[:160]})"
    return None


def _sources(ds: datasets.Dataset) -> tuple[list[str], list[str | bytes]]:
    """(image ids, path or bytes per image) without decoding anything."""
    table = ds.select_columns(["image", "image_id"]).with_format("arrow")[:]
    images = table.column("image").to_pylist()
    return table.column("image_id").to_pylist(), [im["bytes"] or im["path"] for im in images]


def _cache_key(ds: datasets.Dataset, sources: list) -> str:
    # The fingerprint names the rows; size + mtime of each file catch a file replaced under the same name.
    digest = hashlib.sha256(
        f"{ds._fingerprint}|PIL {PIL.__version__}|{Image.MAX_IMAGE_PIXELS}|{CHECK_VERSION}".encode()
    )
    for source in sources:
        if isinstance(source, str):
            try:
                stat = os.stat(source)
                digest.update(f"{source}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{source}|missing\n".encode())
    return digest.hexdigest()[:32]


def default_cache_dir() -> Path:
    return Path(datasets.config.HF_DATASETS_CACHE) / CACHE_SUBDIR


def find_bad_images(
    ds: datasets.Dataset, cache_dir: str | Path | None = None, workers: int | None = None
) -> dict:
    """{image_id: (path or image_id, reason)} for every image of `ds` that cannot be used; cached per split."""
    ids, sources = _sources(ds)
    cache = Path(cache_dir or default_cache_dir()) / f"{_cache_key(ds, sources)}.json"
    if cache.is_file():
        try:
            return {k: tuple(v) for k, v in json.loads(cache.read_text())["bad"].items()}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is simply recomputed
    start = time.perf_counter()
    with ThreadPoolExecutor(
        max_workers=workers or min(8, os.cpu_count() or 1)
    ) as pool:  # PIL decodes without GIL
        checks = pool.map(check_image, sources, chunksize=64)
        reasons = list(progress.bar(checks, total=len(sources), desc="Checking images"))
    bad = {
        image_id: (source if isinstance(source, str) else image_id, reason)
        for image_id, source, reason in zip(ids, sources, reasons, strict=True)
        if reason
    }
    logger.info("Checked %d images in %.1fs: %d unreadable", len(ids), time.perf_counter() - start, len(bad))
    try:  # write-then-rename: a concurrent process (distributed run) never reads half a file
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"checked": len(ids), "bad": bad}))
        os.replace(tmp, cache)
    except OSError as err:
        logger.warning("Could not cache the image check in %s (%s); it will run again next time", cache, err)
    return bad


def verify_splits(
    splits: datasets.DatasetDict,
    on_bad_image: str,
    output_dir: str | Path,
    is_main_process: bool = True,
    cache_dir: str | Path | None = None,
) -> datasets.DatasetDict:
    """Check every image; `skip` drops the bad ones (listed in skipped_images.txt), `error` raises a DataError."""
    bad = {
        image_id: hit for ds in splits.values() for image_id, hit in find_bad_images(ds, cache_dir).items()
    }
    if not bad:
        return splits
    for where, reason in sorted(bad.values()):
        logger.warning("Bad image %s: %s", escape_path(where), reason)
    listed = "; ".join(
        f"{escape_path(where)} ({reason})" for where, reason in list(sorted(bad.values()))[:MAX_LISTED]
    )
    more = f"; and {len(bad) - MAX_LISTED} more (see the log)" if len(bad) > MAX_LISTED else ""
    if on_bad_image == "error":
        raise DataError(
            f"{len(bad)} unreadable image(s): {listed}{more}; delete or replace them, or pass --on_bad_image skip"
        )
    logger.warning(
        "Skipping %d unreadable image(s); listed in %s",
        len(bad),
        escape_path(Path(output_dir) / SKIPPED_IMAGES),
    )
    if is_main_process:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        lines = [
            "\t".join(escape_path(x) for x in (image_id, where, reason)) + "\n"
            for image_id, (where, reason) in sorted(bad.items())
        ]
        artifacts.atomic_write_text(Path(output_dir) / SKIPPED_IMAGES, "".join(lines))
    kept = datasets.DatasetDict(
        {
            name: ds.filter(
                lambda batch: [i not in bad for i in batch], input_columns="image_id", batched=True
            )
            for name, ds in splits.items()
        }
    )
    empty = [name for name, ds in kept.items() if len(ds) == 0]
    if empty:
        raise DataError(
            f"no readable images left in split(s) {', '.join(empty)} after skipping {len(bad)}; fix the data"
        )
    if "train" in kept:  # a class without training images would be evaluated but never learned
        names = kept["train"].features["label"].names
        present = set(kept["train"].unique("label"))
        lost = [names[i] for i in sorted(set(splits["train"].unique("label")) - present)]
        if lost:
            raise DataError(
                f"class(es) {', '.join(lost)} have no readable training images left after skipping {len(bad)} "
                f"unreadable image(s) (listed in {escape_path(Path(output_dir) / SKIPPED_IMAGES)}); fix or "
                "replace those images"
            )
    return kept
