"""collator on batches of every shape: any size, rows unreadable since the check (a blank image labelled
IGNORE_INDEX, so the batch keeps its shape), every row unreadable, uint8 / float32 / float64-list pixels, normalised
on the host or deferred to the device; each batch against the stack and the per-channel formula written out, the
deferred path bit for bit against the host path.

Run: python -m pytest tests/test_collator_shapes.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_lora.placeholders import IGNORE_INDEX
from collator import ClipClassificationCollator

PROMPTS = {"prompt_input_ids": torch.ones(2, 3, dtype=torch.long), "prompt_attention_mask": torch.ones(2, 3)}
MEAN, STD = [0.48, 0.45, 0.40], [0.27, 0.26, 0.28]

batches = st.tuples(
    st.lists(st.booleans(), min_size=1, max_size=6),  # per row: readable (True) or dropped
    st.sampled_from(["uint8", "float32", "float64 list"]),
    st.tuples(st.integers(1, 5), st.integers(1, 5)),  # image height, width
    st.booleans(),  # defer_normalization
    st.integers(0, 2**16),
)


def make_rows(kept: list[bool], kind: str, size: tuple[int, int], seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i, readable in enumerate(kept):
        image = rng.integers(0, 256, (3, *size), dtype=np.uint8)
        pixels = {"uint8": torch.from_numpy(image), "float32": torch.from_numpy(image / 7.0).float()}.get(
            kind
        )
        pixels = (image / 7.0).tolist() if kind == "float64 list" else pixels
        rows.append({"pixel_values": pixels if readable else None, "labels": (3 * i + seed) % 5})
    return rows


def expected_pixels(row: dict, kind: str) -> np.ndarray:
    """What the model must see for one row: the per-channel formula for uint8, the values in float32 otherwise."""
    pixels = np.asarray(row["pixel_values"], dtype=np.float64)
    if kind != "uint8":
        return pixels.astype(np.float32)
    mean, std = np.array(MEAN)[:, None, None], np.array(STD)[:, None, None]
    return (pixels / 255 - mean) / std


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(batches)
def test_every_batch_shape_stacks_every_row_and_flags_the_unreadable_ones(case):
    kept, kind, size, defer, seed = case
    collate = ClipClassificationCollator(**PROMPTS, image_mean=MEAN, image_std=STD, defer_normalization=defer)
    rows = make_rows(kept, kind, size, seed)
    batch = collate(rows)
    # One row per dataset row, always (placeholders.py: batches never change shape); an unreadable image's row is
    # labelled IGNORE_INDEX, every other row keeps its own label.
    assert batch["labels"].dtype == torch.long
    assert batch["labels"].tolist() == [
        row["labels"] if ok else IGNORE_INDEX for row, ok in zip(rows, kept, strict=True)
    ]
    assert batch["input_ids"] is PROMPTS["prompt_input_ids"]
    pixels = batch["pixel_values"]
    if not any(kept):  # no image seen yet: blank rows of the default layout
        assert tuple(pixels.shape[:2]) == (len(rows), 3) and pixels.dtype == torch.float32
        assert not pixels.any()
        return
    assert tuple(pixels.shape) == (len(rows), 3, *size)
    blank = {
        **rows[0],
        "pixel_values": torch.zeros(3, *size, dtype=torch.uint8) if kind == "uint8" else 0 * pixels[0],
    }
    filled = [
        row if ok else blank for row, ok in zip(rows, kept, strict=True)
    ]  # a placeholder is a blank image
    if kind == "uint8" and defer:  # raw bytes leave; the trainer normalises on the device
        assert pixels.dtype == torch.uint8
        assert torch.equal(pixels, torch.stack([row["pixel_values"] for row in filled]))
        host = ClipClassificationCollator(**PROMPTS, image_mean=MEAN, image_std=STD)(rows)["pixel_values"]
        assert torch.equal(collate.normalize(pixels), host)  # the same float32 operations, bit for bit
        return
    assert pixels.dtype == torch.float32
    expected = np.stack([expected_pixels(row, kind) for row in filled])
    np.testing.assert_allclose(pixels.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert collate.normalize(pixels) is pixels  # float pixels are already normalised


def test_an_all_unreadable_batch_keeps_the_layout_of_the_last_images():
    collate = ClipClassificationCollator(**PROMPTS)
    collate([{"pixel_values": torch.zeros(3, 7, 5), "labels": 1}])
    empty = collate([{"pixel_values": None, "labels": 0}, {"pixel_values": None, "labels": 1}])
    assert tuple(empty["pixel_values"].shape) == (2, 3, 7, 5)
    assert empty["labels"].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert empty["pixel_values"].dtype == torch.float32 and empty["labels"].dtype == torch.long


@pytest.mark.parametrize("given", [{"image_mean": MEAN}, {"image_std": STD}, {}])
def test_uint8_pixels_without_both_mean_and_std_are_refused(given):
    collate = ClipClassificationCollator(**PROMPTS, **given)
    with pytest.raises(ValueError, match="image_mean/image_std"):
        collate([{"pixel_values": torch.zeros(3, 2, 2, dtype=torch.uint8), "labels": 0}])
    with pytest.raises(ValueError, match="image_mean/image_std"):
        collate.normalize(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
