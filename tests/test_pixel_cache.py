"""The pixel cache: it stores the NEAREST 8-bit level of the processor's resized pixels (truncation would be off by up
to one level), and it is rebuilt when only the crop size changes or when an image file is replaced under its name."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor

from clip_lora import preprocessing
from clip_lora.data import load_splits


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (45 + 3 * i, 59, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "data" / split / cls / f"{i}.png")
    return tmp_path / "data"


def _processor(size: int = 32, crop: int = 32) -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": crop, "width": crop})


def _cached(folder, processor, cache_dir):
    splits = load_splits(str(folder), dev_split_ratio=0.2)  # a fresh load, as a second run would do
    return preprocessing.prepare_splits(splits, processor, "cached", cache_dir=cache_dir)[0]


def test_cached_pixels_are_the_rounded_resized_pixels(folder, tmp_path):
    processor = _processor()
    fly, _ = preprocessing.prepare_splits(
        load_splits(str(folder), dev_split_ratio=0.2), processor, "on_the_fly"
    )
    cached = _cached(folder, processor, tmp_path / "cache")
    mean = torch.tensor(processor.image_mean).view(3, 1, 1)
    std = torch.tensor(processor.image_std).view(3, 1, 1)
    for i in range(len(fly["val"])):
        levels = (fly["val"][i]["pixel_values"] * std + mean) * 255  # the resized image in 0..255, as floats
        stored = cached["val"][i]["pixel_values"].to(torch.float32)
        assert (stored - levels).abs().max() <= 0.5 + 1e-3


def test_a_new_crop_size_alone_builds_a_new_cache(folder, tmp_path):
    assert _cached(folder, _processor(32, 32), tmp_path)["val"][0]["pixel_values"].shape == (3, 32, 32)
    assert _cached(folder, _processor(32, 24), tmp_path)["val"][0]["pixel_values"].shape == (3, 24, 24)


def test_a_replaced_image_file_builds_a_new_cache(folder, tmp_path):
    before = _cached(folder, _processor(), tmp_path)["val"][0]["pixel_values"]
    path = folder / "val" / "a" / "0.png"
    stat = path.stat()
    Image.new("RGB", (50, 61), (255, 0, 0)).save(path)  # same name, other pixels
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = _cached(folder, _processor(), tmp_path)["val"][0]["pixel_values"]
    assert not torch.equal(before, after)
    assert after[0].min() == 255 and after[1].max() == 0  # the red image, not the cached old one


def test_float_resized_pixels_are_stored_rounded_to_the_nearest_level():
    # The torchvision backend resizes in float (the PIL one here returns whole levels): 0.6 must be stored as 1.
    levels = np.array([0.4, 0.6, 1.5000001, 127.49, 254.6, 255.0, 300.0, -3.0], dtype=np.float32)

    def float_processor(images, do_rescale, do_normalize, return_tensors):
        assert do_rescale is False and do_normalize is False  # the collator rescales and normalises later
        return {"pixel_values": np.stack([np.resize(levels, (3, 2, 4)) for _ in images])}

    batch = {"image": [Image.new("RGB", (5, 5))], "label": [1]}
    stored = preprocessing._resize_crop(batch, float_processor)
    pixels = np.frombuffer(stored["pixel_values"][0], dtype=np.uint8)
    assert pixels[:8].tolist() == [0, 1, 2, 127, 255, 255, 255, 0] and stored["labels"] == [1]
