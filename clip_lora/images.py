"""Images -> model inputs: any PIL mode to RGB, and the on-the-fly CLIPImageProcessor transform.

    ds.set_transform(make_transform(processor.image_processor))   # batches become pixel_values + labels
    rgb = to_rgb(Image.open(path))                                # L, I;16, CMYK, RGBA, P ... -> RGB

This module imports no other project module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
}  # what counts as an image file


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


def make_transform(image_processor) -> Callable[[dict], dict]:
    """Usage: ds.set_transform(make_transform(processor.image_processor)); batches become pixel_values + labels."""

    def transform(batch: dict) -> dict:
        images = [to_rgb(image) for image in batch["image"]]
        pixels = image_processor(images=images, return_tensors="pt")["pixel_values"].float()
        return {"pixel_values": list(pixels), "labels": [int(label) for label in batch["label"]]}

    return transform
