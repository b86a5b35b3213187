"""The bad-input corpus, images: each unreadable image is found with its reason and skipped (counted, listed) or,
with --on_bad_image error, refused before training; odd but valid images (CMYK, 16-bit, palette, 1x1 ...) are used,
converted to RGB. The check runs once per split and is cached.

Run: python -m pytest tests/test_bad_images.py -q
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train_clip_lora
from clip_lora import data, image_check
from clip_lora.images import to_rgb
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS, smoke_argv, user_error

pytestmark = pytest.mark.usefixtures("image_check_cache")  # the verdict cache stays in tmp_path


# ---------------------------------------------------------------- images, one verdict each
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height (PIL checks the bomb limit from the header, before any pixel)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def image_bytes(kind: str) -> bytes:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    jpeg = _encode(rgb, "JPEG")
    if (
        kind == "corrupt_jpeg"
    ):  # the JPEG start marker, then the header tables and frame overwritten with zeros
        return jpeg[:2] + bytes(200) + jpeg[202:]
    if kind == "truncated_jpeg":
        return jpeg[: len(jpeg) // 2]
    if kind == "zero_bytes":
        return b""
    if kind == "text_named_jpeg":
        return b"class,notes\ntench,not really an image\n"
    if kind == "decompression_bomb":
        return _png_header_only(30_000, 30_000)  # 900 MP, 10x PIL's limit
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return {
        "png_named_jpeg": lambda: _encode(rgb, "PNG"),
        "cmyk_jpeg": lambda: _encode(rgb.convert("CMYK"), "JPEG"),
        "gray16_png": lambda: _encode(Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)), "PNG"),
        "grayscale_jpeg": lambda: _encode(rgb.convert("L"), "JPEG"),
        "rgba_png": lambda: _encode(rgb.convert("RGBA"), "PNG"),
        "palette_gif": lambda: _encode(palette, "GIF"),
        "one_pixel_jpeg": lambda: _encode(Image.new("RGB", (1, 1), (200, 10, 10)), "JPEG"),
    }[kind]()


BAD = {
    "corrupt_jpeg": "not an image PIL can read (unknown format or corrupt header)",
    "truncated_jpeg": "truncated image data (OSError: ",
    "zero_bytes": "empty file (0 bytes)",
    "text_named_jpeg": "not an image PIL can read (unknown format or corrupt header)",
    "decompression_bomb": "larger than PIL's decompression-bomb limit (89,478,485 pixels)",
}
USABLE = [
    "png_named_jpeg",
    "cmyk_jpeg",
    "gray16_png",
    "grayscale_jpeg",
    "rgba_png",
    "palette_gif",
    "one_pixel_jpeg",
]


@pytest.mark.parametrize("kind", list(BAD))
def test_unreadable_image_is_found_with_its_reason(kind, tmp_path):
    path = tmp_path / f"{kind}.JPEG"
    path.write_bytes(image_bytes(kind))
    assert image_check.check_image(str(path)).startswith(BAD[kind])
    assert image_check.check_image(path.read_bytes()).startswith(
        BAD[kind]
    )  # hub datasets: bytes, same verdict


@pytest.mark.parametrize("kind", USABLE)
def test_odd_but_valid_image_is_used_as_rgb(kind, tmp_path):
    path = tmp_path / f"{kind}.JPEG"  # every one named .JPEG: PIL reads the content, not the extension
    path.write_bytes(image_bytes(kind))
    assert image_check.check_image(str(path)) is None
    with Image.open(path) as image:
        rgb = to_rgb(image)
        assert rgb.mode == "RGB" and rgb.size == image.size


def _poison(root: Path) -> dict[str, str]:
    """Every image case plus a stray text file into root/{train,val}; returns {image_id: reason} of the bad ones."""
    expected = {}
    for i, kind in enumerate([*BAD, *USABLE]):
        split = "val" if i % 2 else "train"
        path = root / split / WNIDS[i % 2] / f"zz_{kind}.JPEG"
        path.write_bytes(image_bytes(kind))
        if kind in BAD:
            expected[path.relative_to(root).as_posix()] = BAD[kind]
    (root / "train" / WNIDS[0] / "notes.txt").write_text("a non-image file in a class folder")
    return expected


def test_skip_logs_counts_lists_and_trains_around_bad_images(tiny_model_dir, tmp_path, caplog):
    root = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=6, val_per_class=3, size=16)
    expected = _poison(root)
    out = tmp_path / "out"
    results = train_clip_lora.main(smoke_argv(tiny_model_dir, root, out, "--num_train_epochs", "1"))
    lines = (out / image_check.SKIPPED_IMAGES).read_text().splitlines()
    skipped = {line.split("\t")[0]: line.split("\t")[2] for line in lines}
    assert skipped.keys() == expected.keys()
    assert all(skipped[i].startswith(reason) for i, reason in expected.items())
    assert f"Skipping {len(expected)} unreadable image(s)" in caplog.text
    assert all(f"Bad image {root / i}" in caplog.text for i in expected)
    assert "Ignored 1 non-image file(s)" in caplog.text and "notes.txt" in caplog.text
    predicted = [line.split(",")[0] for line in (out / "predictions.csv").read_text().splitlines()[1:]]
    usable_val = [
        f"val/{WNIDS[i % 2]}/zz_{k}.JPEG" for i, k in enumerate([*BAD, *USABLE]) if i % 2 and k in USABLE
    ]
    assert set(usable_val) <= set(predicted) and not set(expected) & set(predicted)
    assert len(predicted) == 6 + len(usable_val) and "eval_accuracy" in results


def test_error_mode_stops_before_training_with_the_list(tiny_model_dir, tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=6, val_per_class=3, size=16)
    expected = _poison(root)
    out = tmp_path / "out"
    line = user_error(smoke_argv(tiny_model_dir, root, out, "--on_bad_image", "error"), capsys)
    assert line.startswith(f"error: {len(expected)} unreadable image(s): ")
    assert line.endswith("delete or replace them, or pass --on_bad_image skip")
    assert str(root / sorted(expected)[0]) in line and "and" not in line.split("; ")[-2]
    assert not list(out.glob("checkpoint-*")) and not (out / "adapter_model.safetensors").exists()


def test_check_is_cached_per_split_fingerprint_and_file_stats(tmp_path, monkeypatch):
    small_data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=4, val_per_class=2, size=16)
    bad = small_data / "train" / WNIDS[0] / "bad.JPEG"
    bad.write_bytes(b"")
    ds = data.load_splits("imagenette", data_dir=str(small_data), download=False, dev_split_ratio=0.25)[
        "train"
    ]
    first = image_check.find_bad_images(ds, tmp_path / "cache")
    assert list(first) == ["train/n01440764/bad.JPEG"]
    monkeypatch.setattr(image_check, "check_image", lambda source: pytest.fail("the cache was not used"))
    assert image_check.find_bad_images(ds, tmp_path / "cache") == first
    bad.write_bytes(image_bytes("png_named_jpeg"))  # fixed under the same name: new size/mtime, checked again
    monkeypatch.undo()
    monkeypatch.setattr(image_check, "default_cache_dir", lambda: tmp_path / "unused")
    assert image_check.find_bad_images(ds, tmp_path / "cache") == {}


def test_images_stored_as_bytes_are_checked_too(tmp_path):
    """Hub datasets keep the encoded image in the arrow table: the same check, on the bytes, named by image_id."""
    import datasets

    rows = {
        "image": [{"bytes": image_bytes(k), "path": None} for k in ("cmyk_jpeg", "truncated_jpeg")],
        "image_id": ["train/0", "train/1"],
    }
    features = datasets.Features({"image": datasets.Image(), "image_id": datasets.Value("string")})
    bad = image_check.find_bad_images(datasets.Dataset.from_dict(rows, features=features), tmp_path / "cache")
    assert list(bad) == ["train/1"] and bad["train/1"][0] == "train/1"
    assert bad["train/1"][1].startswith(BAD["truncated_jpeg"])


def test_images_deleted_after_the_check_are_skipped_listed_and_left_out_of_predictions(
    tiny_model_dir, tmp_path, monkeypatch
):
    root = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=6, val_per_class=3, size=16)
    gone = [
        root / "train" / WNIDS[0] / f"{WNIDS[0]}_train_0001.JPEG",
        root / "val" / WNIDS[1] / f"{WNIDS[1]}_val_0000.JPEG",
    ]
    assert all(p.exists() for p in gone)
    checked = train_clip_lora.verify_splits

    def check_then_delete(*args, **kwargs):
        splits = checked(*args, **kwargs)
        for path in gone:  # deleted between the check and the first epoch
            path.unlink()
        return splits

    monkeypatch.setattr(train_clip_lora, "verify_splits", check_then_delete)
    out = tmp_path / "out"
    results = train_clip_lora.main(smoke_argv(tiny_model_dir, root, out, "--num_train_epochs", "1"))
    listed = {line.split("\t")[0] for line in (out / image_check.SKIPPED_IMAGES).read_text().splitlines()}
    assert listed == {p.relative_to(root).as_posix() for p in gone}
    predicted = [line.split(",")[0] for line in (out / "predictions.csv").read_text().splitlines()[1:]]
    assert len(predicted) == 5 and gone[1].relative_to(root).as_posix() not in predicted
    assert results["eval_samples_per_second"] > 0 and 0 <= results["eval_accuracy"] <= 1
