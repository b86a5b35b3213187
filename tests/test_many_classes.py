"""A thousand classes end to end: the launched pipeline (train, reports, plots, card) at ImageNet's label-set size, in
bounded size. Before: a 200-class run spent 171 s drawing two 12,250 px confusion matrices, and a 1,000-class run was
killed by the OOM killer at 22 GB while drawing a 60,000 px one (no plots, no card, no finished marker).

Run: python -m pytest tests/test_many_classes.py -q   (one tiny run over 3,000 generated images, ~1-2 min)
"""

from __future__ import annotations

import csv

from PIL import Image

from clip_lora import artifacts, plots
from clip_lora.testing_utils import make_image_folder
from testing_utils import run_verb, smoke_argv, user_error

CLASSES = 1000


def test_a_thousand_unknown_class_folders_are_one_short_line(tiny_model_dir, tmp_path, capsys):
    names = [f"class{i:04d}" for i in range(CLASSES)]
    data = make_image_folder(tmp_path / "data", names, train_per_class=1, val_per_class=1, size=8)
    line = user_error(
        smoke_argv(tiny_model_dir, data, tmp_path / "out"), capsys
    )  # ImageNette's layout expected
    assert "1000 unknown class folder(s)" in line and "class0009, and 990 more; known: n01440764" in line
    assert len(line) < 600


def test_a_thousand_class_run_finishes_with_bounded_figures_a_full_matrix_and_a_card(
    tiny_model_dir, tmp_path
):
    names = [f"class{i:04d}" for i in range(CLASSES)]
    data = make_image_folder(tmp_path / "data", names, train_per_class=2, val_per_class=1, size=16)
    out = tmp_path / "out"
    argv = smoke_argv(tiny_model_dir, data, out, "--dataset_name", str(data), "--num_train_epochs", "1")
    argv += ["--dev_split_ratio", "0.5", "--per_device_eval_batch_size", "256"]
    assert run_verb("train", argv) == 0
    report = artifacts.read_json(out / artifacts.CLASSIFICATION_REPORT_JSON)
    assert len(report["per_class"]) == CLASSES and report["total"] == CLASSES
    for png in (plots.CONFUSION_MATRIX, plots.ZERO_SHOT_CONFUSION_MATRIX):
        with Image.open(out / png) as image:
            assert max(image.size) <= 3000  # capped: the 50 most confused classes
        with open((out / png).with_suffix(".csv"), newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) == CLASSES + 1 and all(len(row) == CLASSES + 1 for row in rows)
        assert sum(int(cell) for row in rows[1:] for cell in row[1:]) == CLASSES  # every val image once
    card = (out / "README.md").read_text()
    assert all(f"| {name} |" in card for name in (names[0], names[-1]))  # the per-class table, whole
    assert len(card) < 500_000
