"""Plots: valid PNGs of a sensible size, and confusion matrices whose counts are those of the predictions CSVs."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from clip_lora import artifacts, plots


def _counts_from_csv(path):
    """Independent of plots/artifacts/metrics: count (label, prediction) pairs with the csv module."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        names = next(reader)[3:]
        pairs = Counter((row[1], row[2]) for row in reader)
    return names, [[pairs[(true, pred)] for pred in names] for true in names]


@pytest.mark.parametrize(
    "png", [plots.TRAINING_CURVES, plots.CONFUSION_MATRIX, plots.ZERO_SHOT_CONFUSION_MATRIX]
)
def test_plots_are_valid_pngs_of_sensible_size(trained_run, png):
    path = trained_run.output_dir / png
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and 400 <= image.width <= 3000 and 300 <= image.height <= 3000
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5  # something is drawn, not a blank canvas
    assert 5_000 < path.stat().st_size < 2_000_000


@pytest.mark.parametrize(
    "png, csv_name",
    [
        (plots.CONFUSION_MATRIX, artifacts.PREDICTIONS),
        (plots.ZERO_SHOT_CONFUSION_MATRIX, artifacts.ZERO_SHOT_PREDICTIONS),
    ],
)
def test_confusion_matrix_counts_equal_the_predictions_csv(trained_run, png, csv_name):
    with Image.open(trained_run.output_dir / png) as image:
        drawn = json.loads(image.text["Description"])
    names, counts = _counts_from_csv(trained_run.output_dir / csv_name)
    assert drawn["class_names"] == names and drawn["counts"] == counts
    assert sum(map(sum, counts)) == 100


def test_evaluation_only_run_gets_matrices_but_no_training_curves(tmp_path):
    names = ["cat", "dog", "car"]
    labels = np.array([0, 0, 1, 2, 2, 2])
    logits = np.eye(3)[[0, 1, 1, 2, 0, 2]] * 5.0
    artifacts.write_predictions(
        tmp_path / artifacts.PREDICTIONS, [f"{i}.jpg" for i in range(6)], labels, logits, names
    )
    written = plots.save_plots(tmp_path)
    assert [p.name for p in written] == [plots.CONFUSION_MATRIX]
    with Image.open(tmp_path / plots.CONFUSION_MATRIX) as image:
        assert json.loads(image.text["Description"])["counts"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
