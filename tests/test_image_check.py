"""The pre-training check bounds the work an image costs and decodes it in full: an image that would take gigabytes
to resize, or whose data breaks after its header, is a bad image with a one-line reason; a class that loses every
training image is an error naming it; paths with newlines or undecodable bytes stay one line.

Run: python -m pytest tests/test_image_check.py -q
"""

from __future__ import annotations

import io
import struct
import zlib

import datasets
import numpy as np
import pytest
from PIL import Image

from clip_lora import image_check
from clip_lora.data import class_features
from clip_lora.errors import DataError
from clip_lora.images import MAX_ASPECT_RATIO, BadImageError, open_image


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A grayscale PNG with valid CRCs; `rows` replaces the compressed pixel data."""
    raw = (
        rows if rows is not None else zlib.compress(b"".join(b"\0" + bytes(width) for _ in range(height)), 9)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_a_1kb_png_of_1_by_1_000_000_pixels_is_bad_before_any_resize():
    thin = png(1_000_000, 1)
    assert len(thin) < 2_000  # tiny on disk: the file size says nothing about the work
    reason = image_check.check_image(thin)
    assert reason == f"aspect ratio 1000000x1 is beyond 1:{MAX_ASPECT_RATIO} (its resize would be huge)"
    with pytest.raises(BadImageError, match="aspect ratio 1000000x1"):
        open_image(thin)  # the load-time decode refuses it too (a file rewritten after the check)
    assert image_check.check_image(png(MAX_ASPECT_RATIO, 1)) is None  # the bound itself is fine


def test_a_jpeg_truncated_inside_its_entropy_coded_data_is_bad():
    jpeg = encode(noise(64, 64), "JPEG", quality=95)
    start_of_scan = jpeg.index(b"\xff\xda")
    cut = jpeg[: start_of_scan + (len(jpeg) - start_of_scan) // 2]  # headers intact, half the scan data
    assert image_check.check_image(cut).startswith("truncated image data (OSError: ")


def test_a_png_with_corrupt_idat_is_bad_even_with_valid_checksums():
    good = zlib.compress(b"".join(b"\0" + bytes(16) for _ in range(16)))
    corrupt = good[:2] + bytes(b ^ 0xFF for b in good[2:10]) + good[10:]  # CRC recomputed: verify() passes
    reason = image_check.check_image(png(16, 16, corrupt))
    assert reason is not None and reason.startswith(("corrupt image data", "truncated image data"))


def test_a_gif_with_a_truncated_later_frame_is_bad():
    frames = [noise(32, 32, seed).convert("P") for seed in range(3)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert image_check.check_image(gif) is None
    assert image_check.check_image(gif[: len(gif) - 200]) is not None  # the first frame alone still decodes


def test_a_multipage_tiff_with_a_damaged_first_page_is_bad():
    pages = [noise(32, 32, seed) for seed in range(3)]
    tiff = bytearray(
        encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_adobe_deflate")
    )
    assert image_check.check_image(bytes(tiff)) is None
    for i in range(28, 68):  # inside the first page's deflate stream (it starts after the 8-byte header)
        tiff[i] ^= 0x5A
    # Opening, seeking to every page and decoding only the last one all succeed: only decoding each page fails.
    with Image.open(io.BytesIO(bytes(tiff))) as image:
        for page in range(image.n_frames):
            image.seek(page)
        image.load()
    assert image_check.check_image(bytes(tiff)).startswith("corrupt image data")


def test_exif_orientation_is_applied_by_the_one_decode():
    wide = noise(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    rotated = open_image(encode(wide, "JPEG", exif=exif))
    assert rotated.size == (20, 40) and rotated.mode == "RGB"


def _one_class_unreadable(tmp_path) -> datasets.DatasetDict:
    paths, labels = [], []
    for label in (0, 1):
        for i in range(2):
            path = tmp_path / f"{label}-{i}.png"
            path.write_bytes(encode(noise(8, 8, i), "PNG") if label == 0 else b"not an image")
            paths.append(str(path))
            labels.append(label)
    ids = [f"train/{i}" for i in range(4)]
    ds = datasets.Dataset.from_dict(
        {"image": paths, "label": labels, "image_id": ids}, features=class_features(["tench", "church"])
    )
    return datasets.DatasetDict({"train": ds, "val": ds.select([0])})


def test_a_class_left_without_training_images_is_an_error_naming_it(tmp_path):
    splits = _one_class_unreadable(tmp_path)
    with pytest.raises(DataError, match=r"^class\(es\) church have no readable training images left"):
        image_check.verify_splits(splits, "skip", tmp_path / "out", cache_dir=tmp_path / "cache")


def test_names_with_newlines_and_undecodable_bytes_stay_one_line(tmp_path):
    odd = tmp_path / "two\nlines.png"
    odd.write_bytes(b"")
    ds = datasets.Dataset.from_dict(
        {"image": [str(odd)], "label": [0], "image_id": ["train/two\nlines.png"]},
        features=class_features(["tench"]),
    )
    with pytest.raises(DataError) as err:
        image_check.verify_splits(
            datasets.DatasetDict({"train": ds}), "error", tmp_path, cache_dir=tmp_path / "c"
        )
    assert "\n" not in str(err.value) and "two\\nlines.png (empty file (0 bytes))" in str(err.value)
    good = ds.add_item({"image": str(tmp_path / "ok.png"), "label": 0, "image_id": "train/ok.png"})
    (tmp_path / "ok.png").write_bytes(encode(noise(8, 8), "PNG"))
    image_check.verify_splits(
        datasets.DatasetDict({"train": good}), "skip", tmp_path / "out", cache_dir=tmp_path / "c"
    )
    lines = (tmp_path / "out" / image_check.SKIPPED_IMAGES).read_text().splitlines()
    assert lines == [f"train/two\\nlines.png\t{tmp_path}/two\\nlines.png\tempty file (0 bytes)"]
