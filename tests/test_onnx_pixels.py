"""clip_lora/pixels.py: numpy/PIL pixels equal CLIPImageProcessor's, on real photos and on odd generated images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from transformers import CLIPImageProcessor

from clip_lora.images import to_rgb
from clip_lora.pixels import ClipPixels


def _both(processor: CLIPImageProcessor, tmp_path, images):
    processor.save_pretrained(tmp_path)  # ClipPixels reads what an export carries: preprocessor_config.json
    ours = ClipPixels.from_pretrained(tmp_path)(images)
    theirs = processor(images=images, return_tensors="np")["pixel_values"]
    return ours, theirs


def _generated():
    rng = np.random.default_rng(0)
    noise = [  # non-square both ways, smaller than the crop, one pixel wide, odd sizes
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in ((37, 301), (500, 13), (7, 9), (1, 250))
    ]
    modes = [
        Image.fromarray(rng.integers(0, 256, (61, 90), dtype=np.uint8)),  # L
        Image.fromarray(rng.integers(0, 256, (90, 61, 4), dtype=np.uint8), "RGBA"),
        Image.fromarray(rng.integers(0, 256, (50, 80), dtype=np.uint8)).convert("P"),
        Image.fromarray(rng.integers(0, 65535, (40, 70), dtype=np.uint16)),  # I;16
        Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)).convert("CMYK"),
    ]
    return [to_rgb(image) for image in noise + modes]  # predict's decode, on both paths


@pytest.mark.parametrize(
    "settings",
    [
        {},  # CLIP's 224 / 224
        {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}},  # the tiny test model's
        {
            "size": {"shortest_edge": 20},
            "crop_size": {"height": 24, "width": 28},
        },  # crop > resize: zero padding
    ],
)
def test_generated_images_of_odd_sizes_and_modes(tmp_path, settings):
    ours, theirs = _both(CLIPImageProcessor(**settings), tmp_path, _generated())
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_real_photos_from_shared(shared_data, tmp_path):
    paths = sorted((shared_data / "imagenette2-224-sample").rglob("*.JPEG"))[:8]
    paths += sorted(
        p for p in (shared_data / "full-size-originals").rglob("*") if p.suffix.lower() in (".jpeg", ".jpg")
    )[:4]
    images = [to_rgb(Image.open(path)) for path in paths]
    assert len(images) >= 8
    ours, theirs = _both(CLIPImageProcessor(), tmp_path, images)
    np.testing.assert_array_equal(ours, theirs)


def test_a_config_that_switches_a_step_off_is_refused():
    with pytest.raises(ValueError, match="do_center_crop"):
        ClipPixels.from_config(
            {
                "size": {"shortest_edge": 4},
                "crop_size": {"height": 4, "width": 4},
                "do_center_crop": False,
                "image_mean": [0, 0, 0],
                "image_std": [1, 1, 1],
            }
        )
