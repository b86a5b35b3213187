"""Fuzzing images: random geometry, modes and formats, then random byte-level damage (truncation, flipped bytes,
zeroed or inserted spans, a header that lies about the size), and odd file names.

Every draw: the check gives None or a one-line reason and never raises; the load-time decode gives finite pixels
or a skipped row, never an exception; a whole run over fuzzed images exits 0 with finite results, or exits 2 with
exactly one `error:` line and no traceback, and changes nothing outside its output dir.

Run: python -m pytest tests/test_fuzz_images.py -q     (seeded; CLIP_LORA_FUZZ_EXAMPLES=500 for more: `make fuzz`)
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor

from clip_lora import artifacts, image_check
from clip_lora.cli import run as run_verb
from clip_lora.images import make_transform
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS, small_argv

pytestmark = pytest.mark.usefixtures("image_check_cache")
EXAMPLES = int(os.environ.get("CLIP_LORA_FUZZ_EXAMPLES", "60"))  # single-image draws; whole runs: one per 60
SEED = 20261127
SIDES = [1, 2, 3, 7, 16, 31, 64, 100, 101, 150]
FORMATS = {"JPEG": ("RGB", "L", "CMYK"), "PNG": ("RGB", "L", "RGBA", "P", "I;16"), "GIF": ("P", "L")}
FORMATS |= {"WEBP": ("RGB", "RGBA"), "BMP": ("RGB", "L"), "TIFF": ("RGB", "CMYK", "L")}


def lying_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height over a few bytes of data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def draw_image(rng: np.random.Generator) -> tuple[bytes, str]:
    """(encoded bytes, what was drawn) for one random image, then one random kind of damage."""
    if rng.random() < 0.1:
        width, height = (int(x) for x in rng.choice([1, 7, 30_000, 1_000_000, 2**31 - 1], size=2))
        return lying_png(width, height), f"lying PNG header {width}x{height}"
    fmt = str(rng.choice(list(FORMATS)))
    mode = str(rng.choice(FORMATS[fmt]))
    width, height = (int(x) for x in rng.choice(SIDES, size=2))
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, fmt)
    data = bytearray(buf.getvalue())
    damage = str(rng.choice(["none", "truncate", "flip", "zero", "insert"]))
    if damage == "truncate":
        data = data[: int(rng.integers(0, len(data)))]
    elif damage == "flip":
        for at in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
            data[at] ^= int(rng.integers(1, 256))
    elif damage == "zero":
        at = int(rng.integers(0, len(data)))
        data[at : at + int(rng.integers(1, 64))] = bytes(min(len(data) - at, 64))[: len(data[at : at + 64])]
    elif damage == "insert":
        at = int(rng.integers(0, len(data)))
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(data), f"{fmt} {mode} {width}x{height}, damage {damage}"


def test_random_images_give_a_verdict_or_finite_pixels_never_an_exception(tmp_path):
    rng = np.random.default_rng(SEED)
    processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    transform = make_transform(processor, tmp_path / "skipped.txt")
    for n in range(EXAMPLES):
        data, drawn = draw_image(rng)
        reason = image_check.check_image(data)
        assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason), drawn
        batch = transform({"image": [{"bytes": data, "path": None}], "label": [0], "image_id": [f"fuzz/{n}"]})
        pixels = batch["pixel_values"][0]
        if reason is None:  # what the check passes, training can use
            assert pixels is not None and pixels.shape == (3, 16, 16), drawn
        assert pixels is None or bool(torch.isfinite(pixels).all()), drawn


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(os.fsencode(path.relative_to(root)))
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


ODD_NAMES = [b"new\nline.png", b"caf\xe9.png", b".hidden.png", b"tab\tand space.png", b"plain.png"]


@pytest.mark.parametrize("run", range(max(1, EXAMPLES // 60)))
def test_a_run_over_fuzzed_images_exits_0_with_finite_results_or_2_with_one_line(
    run, tiny_model_dir, tmp_path, capsys
):
    rng = np.random.default_rng([SEED, run])
    root = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=6, val_per_class=3, size=16)
    for i in range(int(rng.integers(1, 6))):
        split = str(rng.choice(["train", "val"]))
        folder = os.fsencode(root / split / WNIDS[int(rng.integers(0, 2))])
        name = ODD_NAMES[int(rng.integers(0, len(ODD_NAMES)))]
        with open(os.path.join(folder, b"%d-" % i + name), "wb") as f:
            f.write(draw_image(rng)[0])
    before = _tree_digest(root)
    out = tmp_path / "out"
    capsys.readouterr()
    code = run_verb("train", small_argv(tiny_model_dir, root, out, "--num_train_epochs", "1"))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 0:
        results = artifacts.read_json(out / artifacts.ALL_RESULTS)
        assert all(math.isfinite(v) for v in results.values() if isinstance(v, float)), results
        skipped = (
            (out / image_check.SKIPPED_IMAGES).read_text() if (out / "skipped_images.txt").exists() else ""
        )
        assert all(line.count("\t") == 2 for line in skipped.splitlines())
    else:
        assert code == 2
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err[-2000:]
    assert _tree_digest(root) == before  # the data is read, never written
