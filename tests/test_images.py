"""Tests for images.py: every PIL mode becomes RGB correctly; the transform equals CLIPImageProcessor's output.

Run: python -m pytest tests/test_images.py -q
"""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor

from clip_lora.data import load_splits
from clip_lora.images import BadImageError, geometry_problem, make_transform, open_image, to_rgb
from clip_lora.placeholders import IGNORE_INDEX, kept_ids, readable
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


# ---------------------------------------------------------------- loading never raises
def _encoded(size=(40, 20), **save) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        buf, "JPEG", **save
    )
    return buf.getvalue()


def test_an_image_unreadable_at_load_time_is_skipped_listed_and_a_placeholder_in_the_batch(tmp_path):
    from clip_lora.images import skipped_ids
    from collator import ClipClassificationCollator

    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    good, gone = tmp_path / "good.jpg", tmp_path / "gone\n.jpg"
    good.write_bytes(_encoded())
    log = tmp_path / "skipped_images.txt"
    batch = make_transform(processor, log)(
        {
            "image": [{"path": str(good), "bytes": None}, {"path": str(gone), "bytes": None}],
            "label": [1, 0],
            "image_id": ["train/good.jpg", "train/gone\n.jpg"],
        }
    )
    assert batch["pixel_values"][0].shape == (3, 32, 32) and batch["pixel_values"][1] is None
    assert log.read_text().startswith("train/gone\\n.jpg\t") and len(log.read_text().splitlines()) == 1
    assert skipped_ids(log) == {"train/gone\\n.jpg"}
    collate = ClipClassificationCollator(
        torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long)
    )
    rows = [
        {"pixel_values": p, "labels": y} for p, y in zip(batch["pixel_values"], batch["labels"], strict=True)
    ]
    # The row keeps its place (every process's batches keep their shape), labelled as ignored: the loss and the
    # metrics leave it out (clip_lora/placeholders.py).
    out = collate(rows)
    assert out["pixel_values"].shape == (2, 3, 32, 32) and out["labels"].tolist() == [1, IGNORE_INDEX]
    torch.testing.assert_close(out["pixel_values"][0], batch["pixel_values"][0])
    assert readable(out)["labels"].tolist() == [1] and readable(out)["pixel_values"].shape == (1, 3, 32, 32)
    empty = collate(rows[1:])  # every image of the batch gone: a batch of placeholders, the same layout
    assert empty["pixel_values"].shape == (1, 3, 32, 32) and empty["labels"].tolist() == [IGNORE_INDEX]
    assert readable(empty)["labels"].shape == (0,)


def test_an_empty_batch_trains_nothing(tiny_model_dir, tmp_path):
    from testing_utils import make_tiny_trainer

    trainer = make_tiny_trainer(tiny_model_dir, tmp_path)
    inputs = trainer.data_collator([{"pixel_values": None, "labels": 1}])  # its one image became unreadable
    assert inputs["labels"].tolist() == [IGNORE_INDEX] and readable(inputs)["pixel_values"].shape[0] == 0
    assert trainer.training_step(trainer.model, inputs).item() == 0.0
    # Every trainable weight got a gradient (under DDP the all-reduce waits for each one), and all of them are 0.
    gradients = [p.grad for p in trainer.model.parameters() if p.requires_grad]
    assert gradients and all(g is not None and not g.any() for g in gradients)


def test_kept_ids_name_exactly_the_rows_an_evaluation_kept():
    ids = ["val/a.jpg", "val/b.jpg", "val/c.jpg"]
    assert kept_ids(ids, None) == ids
    assert kept_ids(ids, np.array([True, False, True])) == ["val/a.jpg", "val/c.jpg"]
    with pytest.raises(ValueError):  # never name rows by guesswork
        kept_ids(ids, np.array([True, False]))


def test_predict_training_and_evaluation_share_one_exif_aware_decode(tmp_path):
    from clip_lora.images import open_image
    from clip_lora.predict import read_image

    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise when shown
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_encoded(exif=exif))
    shown = read_image(path)
    assert shown.size == (20, 40)
    assert list(shown.getdata()) == list(open_image({"path": str(path), "bytes": None}).getdata())
    processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    via_transform = make_transform(processor)({"image": [{"path": str(path), "bytes": None}], "label": [0]})
    torch.testing.assert_close(
        via_transform["pixel_values"][0], processor(images=[shown], return_tensors="pt")["pixel_values"][0]
    )


def test_an_image_over_the_bomb_limit_is_refused_before_decoding_and_one_at_it_is_not(monkeypatch, tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (64, 48)).save(path)
    # PIL itself only warns between the limit and twice the limit: the refusal there is ours.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48 - 1)
    assert geometry_problem(64, 48) == f"larger than PIL's decompression-bomb limit ({64 * 48 - 1:,} pixels)"
    with pytest.raises(BadImageError, match="decompression-bomb"):
        open_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48)
    assert geometry_problem(64, 48) is None
    assert open_image(path).size == (64, 48)
