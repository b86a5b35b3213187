"""data.py: few-shot sampling, Imagewoof (no published MD5), shifted eval folders, hub names."""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from clip_lora import data
from clip_lora.data import IMAGEWOOF_CLASSES, DataError, few_shot_indices, load_eval_folder, load_splits
from testing_utils import make_layout


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    root = make_layout(tmp_path_factory.mktemp("pets") / "pets", ["cat", "dog", "owl"], n_train=12, n_val=2)
    for i in range(5, 12):  # owl: 5 images, 1 of them goes to dev, so K=4 takes all 4 it has left
        (root / "train" / "owl" / f"{i}.JPEG").unlink()
    return root


def _ids(split) -> list[str]:
    return list(split["image_id"])


def test_few_shot_is_stratified_seeded_nested_and_disjoint_from_dev(pets):
    full = load_splits(str(pets), dev_split_ratio=0.25, seed=3)
    shots = {k: load_splits(str(pets), dev_split_ratio=0.25, seed=3, shots_per_class=k) for k in (1, 2, 4)}
    for k, splits in shots.items():
        assert Counter(splits["train"]["label"]) == {0: k, 1: k, 2: min(k, 4)}  # owl keeps 4 train images
        assert _ids(splits["dev"]) == _ids(full["dev"])  # dev carved first: the same for every K
        assert not set(_ids(splits["train"])) & set(_ids(splits["dev"]))
        assert set(_ids(splits["train"])) <= set(_ids(full["train"]))
        assert _ids(splits["val"]) == _ids(full["val"])
    assert (
        set(_ids(shots[1]["train"])) < set(_ids(shots[2]["train"])) < set(_ids(shots[4]["train"]))
    )  # nested
    again = load_splits(str(pets), dev_split_ratio=0.25, seed=3, shots_per_class=2)
    assert _ids(again["train"]) == _ids(shots[2]["train"])
    others = {
        tuple(_ids(load_splits(str(pets), dev_split_ratio=0.25, seed=s, shots_per_class=2)["train"]))
        for s in (4, 5, 6)
    }
    assert len(others | {tuple(_ids(shots[2]["train"]))}) > 1  # the seed changes the sample


def test_few_shot_indices_directly(caplog):
    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    with caplog.at_level(logging.WARNING, logger="data"):
        idx = few_shot_indices(labels, 5, seed=0)
    assert Counter(labels[idx].tolist()) == {0: 5, 1: 3, 2: 5} and len(set(idx)) == 13
    assert "fewer train images" in caplog.text


def test_imagewoof_downloads_without_a_checksum_and_says_so(tmp_path, monkeypatch, caplog):
    wnids = list(IMAGEWOOF_CLASSES)[:3]
    make_layout(tmp_path / "src" / "imagewoof2-160", wnids, n_train=4, n_val=1)
    archive = tmp_path / "imagewoof2-160.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "imagewoof2-160", arcname="imagewoof2-160")
    urls = []

    def fake_download(url, cache_dir):
        urls.append(url)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        return shutil.copy(archive, Path(cache_dir) / Path(url).name)

    monkeypatch.setattr(data, "download_file", fake_download)
    with caplog.at_level(logging.WARNING, logger="data"):
        splits = load_splits(
            "imagewoof", data_dir=str(tmp_path / "woof"), imagenette_size="160", dev_split_ratio=0.25
        )
    assert urls == ["https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-160.tgz"]
    assert "NOT verified" in caplog.text
    assert splits["train"].features["label"].names == list(IMAGEWOOF_CLASSES.values())
    assert sorted(set(splits["val"]["label"])) == [0, 1, 2] and len(splits["val"]) == 3
    assert all(md5 is None for _, md5 in data.IMAGEWOOF_ARCHIVES.values())  # none invented


def test_shifted_eval_folder_with_names_file_and_wnids(tmp_path):
    names = ["tabby cat", "golden retriever"]
    root = make_layout(tmp_path / "shifted", ["c", "d"], n_train=0, n_val=2, val_name="val")
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps({"c": "tabby cat", "d": "golden retriever"}))
    shifted = load_eval_folder(root, names, str(names_file))  # finds val/ inside
    assert len(shifted) == 4 and shifted.features["label"].names == names
    assert dict(zip(shifted["image_id"], shifted["label"], strict=True))["val/d/1.JPEG"] == 1
    woof = make_layout(tmp_path / "woof", ["n02099601"], n_train=0, n_val=2, val_name="val") / "val"
    assert set(load_eval_folder(woof, names)["label"]) == {1}  # the WordNet id names its class
    with pytest.raises(DataError, match="not training classes"):
        load_eval_folder(root, names)  # folders c, d mean nothing without the names file


def test_hub_dataset_class_names_file(tmp_path, monkeypatch):
    feats = datasets.Features({"img": datasets.Image(), "y": datasets.ClassLabel(names=["id0", "id1"])})
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    split = datasets.Dataset.from_dict({"img": [image] * 4, "y": [0, 1, 0, 1]}, features=feats)
    monkeypatch.setattr(
        data.datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict(train=split, test=split)
    )
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps({"id0": "cat", "id1": "dog"}))
    splits = load_splits("someone/pets", dev_split_ratio=0.5, class_names_file=str(names_file))
    assert splits["val"].features["label"].names == ["cat", "dog"]
