"""Tests for data.py: layouts, class names, splits, image conversion, transform.

Run: python -m pytest tests/test_data.py -q   (generated images only; no network; the shared sample is optional)
"""

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image

from clip_lora import data
from clip_lora.data import IMAGENETTE_CLASSES, DataError, load_splits
from clip_lora.images import to_rgb
from testing_utils import NAMES, WNIDS, fake_hub, make_layout, write_image

SHARED_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenette2-224-sample"


# ---------------------------------------------------------------- helpers


# ---------------------------------------------------------------- class table and imagenette folders
def test_imagenette_class_table():
    assert len(IMAGENETTE_CLASSES) == 10
    assert IMAGENETTE_CLASSES["n03888257"] == "parachute"
    assert (
        "n03888605" not in IMAGENETTE_CLASSES
    )  # parallel bars: a neighbouring ImageNet class, not ImageNette
    assert NAMES[0] == "tench" and NAMES[1] == "English springer"
    assert {k: v[0].rsplit("/", 1)[1] for k, v in data.IMAGENETTE_ARCHIVES.items()} == {
        "full": "imagenette2.tgz",
        "320": "imagenette2-320.tgz",
        "160": "imagenette2-160.tgz",
    }


def test_imagenette_layout_names_labels_counts(tmp_path):
    make_layout(tmp_path, WNIDS, n_train=6, n_val=2)
    splits = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.2, download=False)
    assert set(splits) == {"train", "dev", "val"}
    assert len(splits["train"]) == 48 and len(splits["dev"]) == 12 and len(splits["val"]) == 20
    for split in splits.values():
        assert split.features["label"].names == NAMES
        assert list(split.features) == ["image", "label", "image_id"]
    val = splits["val"]
    assert Counter(val["label"]) == dict.fromkeys(range(10), 2)
    for row_id, label in zip(val["image_id"], val["label"], strict=True):
        assert row_id.split("/")[1] == WNIDS[label]  # e.g. val/n03888257/0.JPEG has label "parachute"
    assert "val/n03888257/0.JPEG" in val["image_id"]
    row = val[val["image_id"].index("val/n03888257/0.JPEG")]
    assert NAMES[row["label"]] == "parachute"
    assert isinstance(row["image"], Image.Image) and row["image"].size == (12, 10)


@pytest.mark.parametrize(("size", "folder"), [(None, "imagenette2"), ("320", "imagenette2-320")])
def test_imagenette_nested_archive_folder_and_partial_classes(tmp_path, size, folder):
    make_layout(
        tmp_path / folder, WNIDS[:3], n_train=4, n_val=1
    )  # None: the default archive, the full-size one
    sized = {"imagenette_size": size} if size else {}
    splits = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.25, download=False, **sized)
    assert splits["val"].features["label"].names == NAMES  # all 10 classes even when folders are missing
    assert sorted(set(splits["val"]["label"])) == [0, 1, 2]
    assert splits["val"]["image_id"][0].startswith("val/n01440764/")


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("unknown_wnid", "n03888605"),
        ("no_val", "val/"),
        ("empty_class", "n01440764"),
        ("empty_val", "no class folders with images"),
    ],
)
def test_imagenette_layout_errors(tmp_path, breakage, message):
    make_layout(tmp_path, WNIDS[:2], n_train=2, n_val=1)
    if breakage == "unknown_wnid":
        write_image(tmp_path / "train" / "n03888605" / "bars.JPEG", seed=1)
    elif breakage == "no_val":
        shutil.rmtree(tmp_path / "val")
    elif breakage == "empty_val":
        shutil.rmtree(tmp_path / "val")
        (tmp_path / "val").mkdir()
    else:
        shutil.rmtree(tmp_path / "train" / "n01440764")
        (tmp_path / "train" / "n01440764").mkdir()
        (tmp_path / "train" / "n01440764" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=message):
        load_splits("imagenette", data_dir=str(tmp_path), download=False)


def test_no_data_without_download_says_where_and_what(tmp_path):
    with pytest.raises(DataError) as err:
        load_splits("imagenette", data_dir=str(tmp_path / "empty"), download=False)
    assert str(tmp_path / "empty") in str(err.value) and "--data_dir" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="imagenette_size"):
        load_splits("imagenette", data_dir=str(tmp_path), imagenette_size="224", download=False)


# ---------------------------------------------------------------- dev split and subsets
def test_dev_split_stratified_seeded_disjoint(tmp_path):
    make_layout(tmp_path, WNIDS[:4], n_train=10, n_val=1)
    a = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.2, seed=7, download=False)
    b = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.2, seed=7, download=False)
    c = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.2, seed=8, download=False)
    assert Counter(a["dev"]["label"]) == {0: 2, 1: 2, 2: 2, 3: 2}
    assert a["dev"]["image_id"] == b["dev"]["image_id"] and a["train"]["image_id"] == b["train"]["image_id"]
    assert a["dev"]["image_id"] != c["dev"]["image_id"]
    assert not set(a["dev"]["image_id"]) & set(a["train"]["image_id"])
    assert len(set(a["dev"]["image_id"]) | set(a["train"]["image_id"])) == 40


@pytest.mark.parametrize("ratio", [0, -0.1, 0.6])
def test_dev_split_ratio_must_be_usable(tmp_path, ratio):
    make_layout(tmp_path, WNIDS[:2], n_train=2, n_val=1)
    with pytest.raises(DataError, match="dev_split_ratio"):
        load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=ratio, download=False)


def test_dev_split_tiny_train_keeps_one_train_image_per_class(tmp_path):
    make_layout(tmp_path, WNIDS[:3], n_train=2, n_val=1)
    splits = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.05, download=False)
    assert len(splits["dev"]) == 1 and len(splits["train"]) == 5  # at least one dev image
    for wnid in WNIDS[1:3]:
        (tmp_path / "train" / wnid / "1.JPEG").unlink()  # class sizes 2, 1, 1
    splits = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.5, download=False)
    assert splits["dev"]["label"] == [0] and sorted(splits["train"]["label"]) == [0, 1, 2]


def test_max_samples_balanced_deterministic_and_nested(tmp_path):
    make_layout(tmp_path, WNIDS[:4], n_train=10, n_val=5)
    kwargs = dict(data_dir=str(tmp_path), dev_split_ratio=0.2, download=False)
    small = load_splits("imagenette", max_train_samples=8, max_eval_samples=6, **kwargs)
    again = load_splits("imagenette", max_train_samples=8, max_eval_samples=6, **kwargs)
    larger = load_splits("imagenette", max_train_samples=8, max_eval_samples=10, **kwargs)
    assert len(small["train"]) == 8 and len(small["dev"]) == 6 and len(small["val"]) == 6
    assert Counter(small["train"]["label"]) == {0: 2, 1: 2, 2: 2, 3: 2}
    assert max(Counter(small["val"]["label"]).values()) == 2
    assert small["val"]["image_id"] == again["val"]["image_id"]
    assert set(small["val"]["image_id"]) < set(larger["val"]["image_id"])
    assert len(load_splits("imagenette", max_eval_samples=1000, **kwargs)["val"]) == 20


# ---------------------------------------------------------------- generic imagefolder and hub
def test_generic_imagefolder_with_class_names_file(tmp_path, caplog):
    root = make_layout(
        tmp_path / "pets", ["dog", "cat"], n_train=4, n_val=2, val_name="validation", ext=".PNG"
    )
    (root / "train" / "cat" / "README.md").write_text("not an image")
    (root / "train" / "LICENSE").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="data"):
        plain = load_splits(str(root), dev_split_ratio=0.25)
    assert plain["val"].features["label"].names == ["cat", "dog"]
    assert "Ignored 2 non-image file(s)" in caplog.text
    assert len(plain["train"]) + len(plain["dev"]) == 8 and len(plain["val"]) == 4
    assert plain["val"]["image_id"][0] == "validation/cat/0.PNG"
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps({"cat": "tabby cat", "dog": "golden retriever"}))
    named = load_splits(str(root), dev_split_ratio=0.25, class_names_file=str(names_file))
    assert named["train"].features["label"].names == ["tabby cat", "golden retriever"]
    names_file.write_text(json.dumps({"cat": "tabby cat"}))
    with pytest.raises(DataError, match="dog"):
        load_splits(str(root), class_names_file=str(names_file))
    names_file.write_text("{not json")
    with pytest.raises(DataError, match="cannot read class_names_file"):
        load_splits(str(root), class_names_file=str(names_file))


def test_generic_imagefolder_named_by_wnids_gets_readable_names(tmp_path):
    root = make_layout(tmp_path / "nette", WNIDS[::-1][:2], n_train=2, n_val=1, val_name="test")
    splits = load_splits(str(root), dev_split_ratio=0.5)
    assert splits["val"].features["label"].names == ["golf ball", "parachute"]


def test_hub_dataset_columns_renamed(monkeypatch):
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, **kw: calls.append(name) or fake_hub())
    splits = load_splits("someone/insects", dev_split_ratio=0.34)
    assert calls == ["someone/insects"]
    assert list(splits["val"].features) == ["image", "label", "image_id"]
    assert splits["val"].features["label"].names == ["ant", "bee"]
    assert splits["val"]["image_id"] == ["test/0", "test/1", "test/2", "test/3"]
    assert len(splits["dev"]) == 2 and all(i.startswith("train/") for i in splits["train"]["image_id"])
    assert splits["val"][0]["image"].getpixel((0, 0)) == (10, 200, 30)


def test_hub_dataset_without_classlabel_is_refused(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", lambda name, **kw: fake_hub(with_label=False))
    with pytest.raises(DataError, match="ClassLabel"):
        load_splits("someone/unlabelled")


# ---------------------------------------------------------------- real sample (optional)
@pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="../shared/data/imagenette2-224-sample not present")
def test_shared_imagenette_sample():
    splits = load_splits("imagenette", data_dir=str(SHARED_SAMPLE), download=False)
    assert len(splits["train"]) + len(splits["dev"]) == 1000 and len(splits["val"]) == 300
    assert len(splits["dev"]) == 50 and Counter(splits["dev"]["label"]) == dict.fromkeys(range(10), 5)
    assert splits["val"].features["label"].names == NAMES
    assert Counter(splits["val"]["label"]) == dict.fromkeys(range(10), 30)
    row = splits["val"][299]
    assert row["image_id"].startswith("val/n03888257/") and NAMES[row["label"]] == "parachute"
    assert to_rgb(row["image"]).size == (224, 224)


def test_hidden_files_and_folders_are_never_classes_or_images(tmp_path, caplog):
    make_layout(tmp_path, WNIDS[:2], n_train=4, n_val=2)
    for split in ("train", "val"):
        (tmp_path / split / ".ipynb_checkpoints").mkdir()  # a hidden folder: not a class
        (tmp_path / split / ".ipynb_checkpoints" / "x.JPEG").write_bytes(b"")
        (tmp_path / split / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "train" / WNIDS[0] / "._0.JPEG").write_bytes(b"\0")  # macOS resource fork: not an image
    (tmp_path / "train" / WNIDS[0] / ".cache").mkdir()
    (tmp_path / "train" / WNIDS[0] / ".cache" / "thumb.JPEG").write_bytes(b"\0")
    splits = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.25, download=False)
    ids = [*splits["train"]["image_id"], *splits["dev"]["image_id"], *splits["val"]["image_id"]]
    assert len(ids) == 12 and not any("/." in i for i in ids)
    assert "Ignored" not in caplog.text  # hidden files are not even worth a warning


def test_a_file_name_that_is_not_utf8_is_ignored_with_an_escaped_warning(tmp_path, caplog):
    import os

    make_layout(tmp_path, WNIDS[:2], n_train=4, n_val=2)
    odd = os.path.join(os.fsencode(tmp_path / "train" / WNIDS[0]), b"caf\xe9.JPEG")
    with open(odd, "wb") as f:
        f.write((tmp_path / "train" / WNIDS[0] / "0.JPEG").read_bytes())
    splits = load_splits("imagenette", data_dir=str(tmp_path), dev_split_ratio=0.25, download=False)
    assert len(splits["train"]) + len(splits["dev"]) == 8
    assert "Ignored 1 non-image file(s) (or ones whose name is not UTF-8)" in caplog.text
    assert "caf\\udce9.JPEG" in caplog.text
