"""image_check decodes every image: files whose header and structure are fine but whose compressed data is cut or
corrupt (a JPEG cut inside its entropy-coded data, a PNG with a corrupt IDAT and a valid CRC, a GIF with a truncated
frame) pass PIL's open() and verify(), and only a full decode finds them. Also the decompression-bomb limit."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from clip_lora.image_check import check_image

PIXELS = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def jpeg_cut_in_entropy_data() -> bytes:
    jpeg = _encode(Image.fromarray(PIXELS), "JPEG")
    start_of_scan = jpeg.index(b"\xff\xda")
    return jpeg[: start_of_scan + (len(jpeg) - start_of_scan) // 2]


def png_with_corrupt_idat() -> bytes:
    png = _encode(Image.fromarray(PIXELS), "PNG")
    at = png.index(b"IDAT")
    length = struct.unpack(">I", png[at - 4 : at])[0]
    data = bytearray(png[at + 4 : at + 4 + length])
    data[20:60] = bytes(b ^ 0xFF for b in data[20:60])  # the deflate stream is broken ...
    crc = struct.pack(
        ">I", zlib.crc32(b"IDAT" + bytes(data))
    )  # ... but its chunk CRC is right, so verify() passes
    return png[: at + 4] + bytes(data) + crc + png[at + 8 + length :]


def gif_with_truncated_frame() -> bytes:
    gif = _encode(Image.fromarray(PIXELS).convert("P"), "GIF")
    return gif[: len(gif) * 2 // 3]


@pytest.mark.parametrize("make", [jpeg_cut_in_entropy_data, png_with_corrupt_idat, gif_with_truncated_frame])
def test_damage_inside_the_compressed_data_is_found(make):
    damaged = make()
    with Image.open(io.BytesIO(damaged)) as image:
        image.verify()  # passes: structure alone cannot tell, so the check must decode
    reason = check_image(damaged)
    assert reason is not None and ("truncated" in reason or "corrupt" in reason), reason


def test_intact_images_pass():
    for fmt in ("JPEG", "PNG"):
        assert check_image(_encode(Image.fromarray(PIXELS), fmt)) is None
    assert check_image(_encode(Image.fromarray(PIXELS).convert("P"), "GIF")) is None


def test_an_image_over_the_bomb_limit_is_bad_and_one_at_it_is_not(monkeypatch):
    png = _encode(Image.fromarray(PIXELS), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 - 1)  # PIL itself only warns below twice the limit
    assert "decompression-bomb" in check_image(png)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)
    assert check_image(png) is None
