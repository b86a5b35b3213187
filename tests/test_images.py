"""Tests for images.py: every PIL mode becomes RGB correctly; the transform equals CLIPImageProcessor's output.

Run: python -m pytest tests/test_images.py -q
"""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor

from clip_lora.data import load_splits
from clip_lora.images import make_transform, to_rgb
from testing_utils import WNIDS, make_layout


def rgb_pixel(image: Image.Image) -> tuple:
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == image.size
    return out.getpixel((0, 0))


@pytest.mark.parametrize(
    "image, expected",
    [
        (Image.new("L", (3, 2), 77), (77, 77, 77)),
        (Image.new("1", (3, 2), 1), (255, 255, 255)),
        (Image.new("LA", (3, 2), (0, 0)), (255, 255, 255)),  # fully transparent -> white background
        (Image.new("RGBA", (3, 2), (255, 0, 0, 255)), (255, 0, 0)),
        (Image.new("RGBA", (3, 2), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("RGBA", (3, 2), (0, 0, 255, 128)), (127, 127, 255)),
        (Image.new("CMYK", (3, 2), (255, 0, 0, 0)), (0, 255, 255)),
        (
            Image.fromarray(np.full((2, 3), 32896, dtype=np.uint16)),
            (128, 128, 128),
        ),  # I;16 mid-grey, not white
        (Image.fromarray(np.full((2, 3), 65535, dtype=np.int32)), (255, 255, 255)),  # mode I, 16-bit range
        (Image.fromarray(np.full((2, 3), 0.5, dtype=np.float32)), (128, 128, 128)),  # mode F in [0, 1]
    ],
    ids=["L", "1", "LA", "RGBA-opaque", "RGBA-clear", "RGBA-half", "CMYK", "I;16", "I", "F"],
)
def test_to_rgb_modes(image, expected):
    assert all(abs(a - b) <= 1 for a, b in zip(rgb_pixel(image), expected, strict=True)), rgb_pixel(image)


def test_to_rgb_16bit_keeps_gradient_and_palette_transparency():
    ramp = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))
    assert ramp.mode == "I;16"
    assert [to_rgb(ramp).getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]
    pal = Image.new("P", (2, 1), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 1  # palette index 1 (blue) is transparent
    assert [to_rgb(pal).getpixel((x, 0)) for x in range(2)] == [(255, 0, 0), (255, 255, 255)]
    opaque = pal.copy()
    opaque.info.pop("transparency")
    assert to_rgb(opaque).getpixel((1, 0)) == (0, 0, 255)


def test_transform_matches_processor(tmp_path):
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    make_layout(tmp_path, WNIDS[:2], n_train=2, n_val=2)
    val = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.5, download=False)["val"]
    expected = processor(images=[val[i]["image"].convert("RGB") for i in range(4)], return_tensors="pt")
    val.set_transform(make_transform(processor))
    batch = val[:4]
    assert set(batch) == {"pixel_values", "labels"} and batch["labels"] == [0, 0, 1, 1]
    assert all(p.shape == (3, 32, 32) and p.dtype == torch.float32 for p in batch["pixel_values"])
    torch.testing.assert_close(torch.stack(batch["pixel_values"]), expected["pixel_values"])
    gray = make_transform(processor)({"image": [Image.new("I;16", (40, 50))], "label": [3]})
    assert gray["pixel_values"][0].shape == (3, 32, 32) and gray["labels"] == [3]
