"""Images -> model inputs: ONE decode (EXIF orientation, size bounds, any PIL mode to RGB) for training, evaluation
and predict, and the on-the-fly CLIPImageProcessor transform that never raises.

    ds.set_transform(make_transform(processor.image_processor, skip_log))   # batches become pixel_values + labels
    rgb = open_image(path_or_bytes)                                        # oriented, bounded, RGB; raises if bad
    rgb = to_rgb(Image.open(path))                                         # L, I;16, CMYK, RGBA, P ... -> RGB

An image that cannot be decoded when a batch is built (deleted or rewritten after the pre-training check) is
skipped: its row comes out with pixel_values None (a placeholder row in the collator, left out of the loss and the
metrics: clip_lora/placeholders.py) and one line is appended to skip_log.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from clip_lora.artifacts import escape_path

logger = logging.getLogger(__name__)

# What counts as an image file.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Work an image may cost. Resizing to a shortest edge S makes S*S*aspect pixels, so the aspect ratio bounds the
# resized size (a 1 x 1,000,000 PNG of 1 KB would be a 10 GB resize); PIL's bomb limit bounds the decoded size.
MAX_ASPECT_RATIO = 100


class BadImageError(ValueError):
    """An image that cannot be used; the message is the one-line reason."""


def geometry_problem(width: int, height: int) -> str | None:
    """None when an image of width x height costs bounded work to decode and resize; else the reason."""
    limit = Image.MAX_IMAGE_PIXELS
    if width < 1 or height < 1:
        return f"has no pixels ({width}x{height})"
    if limit and width * height > limit:
        return f"larger than PIL's decompression-bomb limit ({limit:,} pixels)"
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        return f"aspect ratio {width}x{height} is beyond 1:{MAX_ASPECT_RATIO} (its resize would be huge)"
    return None


def _open(source) -> Image.Image:
    if isinstance(source, dict):  # a datasets.Image(decode=False) cell
        source = source.get("bytes") or source.get("path")
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def open_image(source) -> Image.Image:
    """Path, bytes, {"path", "bytes"} or an opened PIL image -> RGB, EXIF-oriented; BadImageError (one-line reason)
    when it cannot be decoded or would cost unbounded work."""
    try:
        image = source if isinstance(source, Image.Image) else _open(source)
        problem = geometry_problem(*image.size)
        if problem:
            raise BadImageError(problem)
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))
    except BadImageError:
        raise
    # PIL raises OSError, SyntaxError, ValueError, struct.error, DecompressionBombError ...
    except Exception as err:
        raise BadImageError(f"{type(err).__name__}: {' '.join(str(err).split())[:160]}") from None


def record_skipped(skip_log: str | Path, image_id: str, where: str, reason: str) -> None:
    """One line (id, where, reason; escaped) appended to skip_log, from any process or data-loader worker."""
    line = "\t".join(escape_path(x) for x in (image_id, where, reason)) + "\n"
    fd = os.open(skip_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One write of one line: appends from several workers never interleave.
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def skipped_ids(skip_log: str | Path) -> set[str]:
    try:
        text = Path(skip_log).read_text(encoding="utf-8")
    except OSError:
        return set()
    return {line.split("\t", 1)[0] for line in text.splitlines() if line}


def _gray_to_8bit(image: Image.Image) -> Image.Image:
    """Scales 16-bit / 32-bit integer / float grayscale to 0..255 instead of letting PIL clip it to white."""
    arr = np.asarray(image).astype(np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if image.mode == "F" and peak <= 1.0:
        arr = arr * 255.0  # float images in [0, 1]
    elif image.mode.startswith("I;16") or peak > 255:
        arr = arr / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))  # 2-D uint8 -> mode L


def to_rgb(image: Image.Image) -> Image.Image:
    """Usage: to_rgb(Image.open(path)) -> RGB image; alpha is composited on white, 16-bit gray scaled to 8 bit."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _gray_to_8bit(image).convert("RGB")
    if image.has_transparency_data:  # alpha band or palette/colour-key transparency
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


# skipped_images.txt's reason for an image that went bad during the run (lost_images.py counts these)
LOADED_REASON = "unreadable when loaded"


def skip(where, image_id: str | None, reason: str, skip_log: str | Path | None) -> None:
    """An image unreadable when its batch is built: one warning, and one line in skip_log (when there is one)."""
    logger.warning("Skipping image %s: %s", escape_path(str(where)), reason)
    if skip_log and image_id is not None:
        record_skipped(skip_log, image_id, str(where), f"{LOADED_REASON} ({reason})")


def decode_rows(batch: dict) -> list[tuple[Image.Image | None, str]]:
    """Each row's image through open_image, as (RGB image, "") or (None, the reason it cannot be decoded): the ONE
    decode of every reader (on-the-fly transform, the pixel cache, predict), so none of them can raise for an image."""
    out = []
    for image in batch["image"]:
        try:
            out.append((open_image(image), ""))
        except BadImageError as err:
            out.append((None, str(err)))
    return out


def source_of(image, image_id: str | None) -> str:
    """Where an image came from, for a log line: its path, else its id."""
    return str((image.get("path") if isinstance(image, dict) else None) or image_id)


def make_transform(image_processor, skip_log: str | Path | None = None) -> Callable[[dict], dict]:
    """Usage: ds.set_transform(make_transform(processor.image_processor, skip_log)); batches become pixel_values +
    labels. Never raises for an image: an unreadable one gives pixel_values None (a placeholder row in the
    collator), logged and listed in skip_log."""

    def transform(batch: dict) -> dict:
        ids = batch.get("image_id") or [None] * len(batch["label"])
        decoded = decode_rows(batch)
        for (image, reason), raw, image_id in zip(decoded, batch["image"], ids, strict=True):
            if image is None:
                skip(source_of(raw, image_id), image_id, reason, skip_log)
        images = [image for image, _ in decoded if image is not None]
        pixels = iter(
            image_processor(images=images, return_tensors="pt")["pixel_values"].float() if images else []
        )
        return {
            "pixel_values": [next(pixels) if image is not None else None for image, _ in decoded],
            "labels": [int(label) for label in batch["label"]],
        }

    return transform
