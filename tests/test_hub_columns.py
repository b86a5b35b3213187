"""--dataset_config_name, --image_column_name, --label_column_name: run_image_classification.py's flags, with its
meaning, for a hub dataset (a recording fake of datasets.load_dataset, offline); a wrong column is one line listing
the dataset's columns; on a folder dataset the flags are refused before anything loads.

Run: python -m pytest tests/test_hub_columns.py -q
"""

from __future__ import annotations

import json

import datasets
import pytest
from PIL import Image

from clip_lora.cli import run as run_verb
from testing_utils import user_error

FINE = ["ant", "bee", "fern"]


def two_of_each() -> datasets.DatasetDict:
    """Two Image and two ClassLabel columns. The first of each is what a guess by type takes: `photo` holds no
    image at all and `coarse` two classes, so a run that used them would fail or report the wrong classes."""
    features = datasets.Features(
        {
            "photo": datasets.Image(),
            "coarse": datasets.ClassLabel(names=["animal", "plant"]),
            "caption": datasets.Value("string"),
            "thumb": datasets.Image(),
            "fine": datasets.ClassLabel(names=FINE),
        }
    )
    n = 15
    rows = {
        "photo": [None] * n,
        "coarse": [0 if i % 3 < 2 else 1 for i in range(n)],
        "caption": ["x"] * n,
        "thumb": [Image.new("RGB", (16, 16), (80 * (i % 3), 40, 200 - 60 * (i % 3))) for i in range(n)],
        "fine": [i % 3 for i in range(n)],
    }
    train = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict({"train": train, "validation": train.select(range(6))})


@pytest.fixture()
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return two_of_each()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _argv(tiny_model_dir, out, *extra):
    return [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--dataset_name",
        "someone/plants",
        "--output_dir",
        str(out),
        "--use_cpu",
        "true",
        "--dev_split_ratio",
        "0.2",
        "--report_to",
        "none",
        *extra,
    ]


def test_the_named_config_and_columns_are_the_ones_used(
    fake_hub, tiny_model_dir, tmp_path, image_check_cache
):
    out = tmp_path / "out"
    flags = ("--dataset_config_name", "small", "--image_column_name", "thumb", "--label_column_name", "fine")
    assert run_verb("eval", _argv(tiny_model_dir, out, *flags)) == 0
    assert fake_hub == [
        ("someone/plants", {"name": "small"})
    ]  # load_dataset(path, name=config), as HF's script
    report = json.loads((out / "classification_report.json").read_text())
    assert list(report["per_class"]) == FINE and report["total"] == 6
    assert not (out / "skipped_images.txt").exists() or not (out / "skipped_images.txt").read_text().strip()


@pytest.mark.parametrize(
    "flags, line",
    [
        (
            ("--image_column_name", "picture"),
            "error: --image_column_name 'picture' is not a column of someone/plants; its columns: photo, coarse, "
            "caption, thumb, fine.",
        ),
        (
            ("--label_column_name", "labels"),
            "error: --label_column_name 'labels' is not a column of someone/plants; its columns: photo, coarse, "
            "caption, thumb, fine.",
        ),
        (
            ("--label_column_name", "caption"),
            "error: --label_column_name 'caption' of someone/plants is not a ClassLabel column "
            "(Value('string')); its ClassLabel columns: coarse, fine.",
        ),
    ],
)
def test_a_wrong_column_is_one_line_listing_the_columns(
    fake_hub, tiny_model_dir, tmp_path, capsys, flags, line, monkeypatch
):
    from clip_lora import run_dir

    monkeypatch.setattr(run_dir, "active_run", lambda: None)
    assert user_error(_argv(tiny_model_dir, tmp_path / "out", *flags), capsys, "eval") == line


def test_on_a_folder_dataset_the_hub_flags_are_refused_at_once(image_root, tiny_model_dir, tmp_path, capsys):
    argv = ["--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(image_root)]
    assert user_error([*argv, "--label_column_name", "fine"], capsys) == (
        f"error: --label_column_name fine applies to a hub dataset; --dataset_name {image_root} is a folder of "
        "<class>/<images> (columns image and label): drop it."
    )
