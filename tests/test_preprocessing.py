"""preprocessing: the cached path gives the on-the-fly pixels, reuses its cache, and rebuilds it when settings change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor

import train_clip_lora
from clip_lora import preprocessing
from clip_lora.artifacts import read_predictions
from clip_lora.data import load_splits
from clip_lora.images import make_transform
from collator import ClipClassificationCollator
from testing_utils import smoke_argv

PROMPTS = {"prompt_input_ids": torch.ones(2, 3, dtype=torch.long), "prompt_attention_mask": torch.ones(2, 3)}


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    """Two classes of non-square images in every mode to_rgb handles (RGB, RGBA, L, P, 16-bit), sizes not /32."""
    root = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(0)
    modes = ["RGB", "RGBA", "L", "P", "I;16", "RGB"]
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i, mode in enumerate(modes):
                h, w = 37 + 7 * i, 61 - 5 * i
                rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                image = rgb.convert("L" if mode == "I;16" else mode)
                if mode == "I;16":
                    image = Image.fromarray(np.asarray(image).astype("<u2") * 257)
                    assert image.mode == "I;16"
                image.save(root / split / cls / f"{i}.png")
    return root


def _processor(crop: int = 32) -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": crop}, crop_size={"height": crop, "width": crop})


def _batch(ds, collate):
    return collate([ds[i] for i in range(len(ds))])


def test_cached_pixels_equal_on_the_fly_within_one_level(odd_images, tmp_path):
    processor = _processor()
    fly = load_splits(str(odd_images), dev_split_ratio=0.2)
    fly_splits, none = preprocessing.prepare_splits(fly, processor, "on_the_fly")
    cached_splits, norm = preprocessing.prepare_splits(
        load_splits(str(odd_images), dev_split_ratio=0.2), processor, "cached", cache_dir=tmp_path
    )
    assert none == {} and set(cached_splits) == {"train", "dev", "val"}
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    for name in ("train", "val"):
        assert cached_splits[name][0]["pixel_values"].dtype == torch.uint8  # stored once, 1 byte per value
        cached = _batch(cached_splits[name], ClipClassificationCollator(**PROMPTS, **norm))
        reference = _batch(fly_splits[name], ClipClassificationCollator(**PROMPTS))
        assert cached["pixel_values"].dtype == torch.float32
        assert cached["pixel_values"].shape == reference["pixel_values"].shape == (len(fly[name]), 3, 32, 32)
        # Differences measured in [0, 1] pixel units, per channel: at most one level of 8 bits.
        assert ((cached["pixel_values"] - reference["pixel_values"]) * std).abs().max() <= 1 / 255
        assert torch.equal(cached["labels"], reference["labels"])


def test_uint8_pixels_without_normalisation_are_refused():
    with pytest.raises(ValueError, match="image_mean"):
        ClipClassificationCollator(**PROMPTS)(
            [{"pixel_values": torch.zeros(3, 2, 2, dtype=torch.uint8), "labels": 0}]
        )


def test_cache_is_reused_and_rebuilt_when_processor_settings_change(odd_images, tmp_path, monkeypatch):
    calls = []
    resize_crop = preprocessing._resize_crop
    monkeypatch.setattr(
        preprocessing, "_resize_crop", lambda batch, **kw: calls.append(1) or resize_crop(batch, **kw)
    )

    def run(processor):
        splits = load_splits(str(odd_images), dev_split_ratio=0.2)  # a fresh load, as a second run would do
        calls.clear()
        out, _ = preprocessing.prepare_splits(splits, processor, "cached", cache_dir=tmp_path)
        return out, len(calls)

    first, built = run(_processor(32))
    files = sorted(tmp_path.glob("pixels-*.arrow"))
    assert built > 0 and len(files) == 3  # train, dev, val
    mtimes = [f.stat().st_mtime_ns for f in files]
    again, rebuilt = run(_processor(32))
    assert rebuilt == 0  # read back from the cache, not decoded again
    assert (
        sorted(tmp_path.glob("pixels-*.arrow")) == files and [f.stat().st_mtime_ns for f in files] == mtimes
    )
    assert torch.equal(again["train"][0]["pixel_values"], first["train"][0]["pixel_values"])
    smaller, built = run(_processor(24))  # another crop size: a new cache, new shapes
    assert built > 0 and len(list(tmp_path.glob("pixels-*.arrow"))) == 6
    assert smaller["train"][0]["pixel_values"].shape == (3, 24, 24)
    bicubic_to_nearest = _processor(32)
    bicubic_to_nearest.resample = 0
    _, built = run(bicubic_to_nearest)
    assert built > 0 and len(list(tmp_path.glob("pixels-*.arrow"))) == 9


def test_auto_caches_on_gpu_only_and_bad_modes_fail():
    assert preprocessing.resolve_mode("auto", cuda_available=True) == "cached"
    assert preprocessing.resolve_mode("auto", cuda_available=False) == "on_the_fly"
    assert preprocessing.resolve_mode("cached", cuda_available=False) == "cached"
    with pytest.raises(ValueError, match="on_the_fly"):
        preprocessing.resolve_mode("fast")


def test_main_cached_predicts_like_on_the_fly(tiny_model_dir, image_root, tmp_path, monkeypatch):
    monkeypatch.setattr(preprocessing.datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    runs = {}
    for mode in ("on_the_fly", "cached"):
        argv = smoke_argv(
            tiny_model_dir, image_root, tmp_path / mode, "--do_train", "false", "--preprocessing", mode
        )
        runs[mode] = train_clip_lora.main(argv)
    assert list((tmp_path / "hf-cache" / "clip_lora_pixels").glob("pixels-*.arrow"))
    assert runs["cached"]["eval_accuracy"] == runs["on_the_fly"]["eval_accuracy"]
    fly = read_predictions(tmp_path / "on_the_fly" / "predictions.csv")
    cached = read_predictions(tmp_path / "cached" / "predictions.csv")
    np.testing.assert_array_equal(fly[1], cached[1])
    probabilities = {
        mode: np.loadtxt(tmp_path / mode / "predictions.csv", delimiter=",", skiprows=1, usecols=range(3, 13))
        for mode in runs
    }
    np.testing.assert_allclose(probabilities["cached"], probabilities["on_the_fly"], atol=1e-4)


def test_on_the_fly_transform_is_the_data_module_one(odd_images):
    """on_the_fly keeps images.make_transform: the float pixels the collator passes through untouched."""
    splits, _ = preprocessing.prepare_splits(
        load_splits(str(odd_images), dev_split_ratio=0.2), _processor(), "on_the_fly"
    )
    raw = load_splits(str(odd_images), dev_split_ratio=0.2)["val"]
    expected = make_transform(_processor())(raw[:1])["pixel_values"][0]
    assert torch.equal(splits["val"][0]["pixel_values"], expected)


def test_the_cache_build_decodes_through_open_image_and_an_image_gone_since_the_check_is_a_listed_skip(
    odd_images, tmp_path
):
    import shutil

    from clip_lora.images import skipped_ids
    from clip_lora.placeholders import IGNORE_INDEX

    root = tmp_path / "data"
    shutil.copytree(odd_images, root)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    splits = load_splits(str(root), dev_split_ratio=0.5)
    val_ids = list(splits["val"]["image_id"])
    (root / val_ids[1]).unlink()  # deleted after the check
    (root / val_ids[4]).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # rewritten: a truncated PNG
    rows = {}
    for mode in ("cached", "on_the_fly"):
        log = tmp_path / f"skipped-{mode}.txt"
        ready, norm = preprocessing.prepare_splits(
            dict(splits),  # the same rows for both paths, listed before the files changed
            processor,
            mode,
            cache_dir=tmp_path / "cache",
            skip_log=log,
        )
        val = ready["val"]
        batch = ClipClassificationCollator(**PROMPTS, **norm)([val[i] for i in range(len(val))])
        rows[mode] = batch
        assert batch["labels"].tolist().count(IGNORE_INDEX) == 2 and len(batch["labels"]) == len(val_ids)
        assert [i for i, label in enumerate(batch["labels"].tolist()) if label == IGNORE_INDEX] == [1, 4]
        assert skipped_ids(log) == {val_ids[1], val_ids[4]}  # counted and listed, as on the on-the-fly path
        assert all("unreadable when loaded" in line for line in log.read_text().splitlines())
    keep = rows["cached"]["labels"] != IGNORE_INDEX
    assert torch.equal(rows["cached"]["labels"], rows["on_the_fly"]["labels"])
    torch.testing.assert_close(
        rows["cached"]["pixel_values"][keep], rows["on_the_fly"]["pixel_values"][keep], atol=0.02, rtol=0
    )
