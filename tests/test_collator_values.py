"""collator: uint8 pixels normalised per channel exactly as an explicit loop does, labels in the images' order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collator import ClipClassificationCollator

PROMPTS = {"prompt_input_ids": torch.ones(2, 3, dtype=torch.long), "prompt_attention_mask": torch.ones(2, 3)}
MEAN, STD = [0.48, 0.45, 0.40], [0.27, 0.26, 0.28]


def reference_normalise(pixels: np.ndarray, rescale: float) -> np.ndarray:
    """(3, H, W) uint8 -> float: (x * rescale - mean[c]) / std[c], one value at a time."""
    out = np.empty(pixels.shape, dtype=np.float64)
    for c in range(pixels.shape[0]):
        for y in range(pixels.shape[1]):
            for x in range(pixels.shape[2]):
                out[c, y, x] = (pixels[c, y, x] * rescale - MEAN[c]) / STD[c]
    return out


@pytest.mark.parametrize("rescale", [None, 1 / 127.5])
def test_uint8_pixels_are_rescaled_and_normalised_per_channel(rescale):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (3, 4, 5), dtype=np.uint8) for _ in range(3)]
    extra = {} if rescale is None else {"rescale_factor": rescale}
    collate = ClipClassificationCollator(**PROMPTS, image_mean=MEAN, image_std=STD, **extra)
    batch = collate(
        [
            {"pixel_values": torch.from_numpy(im), "labels": label}
            for im, label in zip(images, [2, 0, 1], strict=True)
        ]
    )
    assert batch["pixel_values"].dtype == torch.float32
    for got, image in zip(batch["pixel_values"], images, strict=True):
        expected = reference_normalise(
            image, 1 / 255 if rescale is None else rescale
        )  # 1/255: CLIP's default
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert batch["labels"].tolist() == [2, 0, 1] and batch["labels"].dtype == torch.long
