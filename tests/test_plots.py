"""Plots: valid PNGs of a sensible size, and confusion matrices whose counts are those of the predictions CSVs."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from clip_lora import artifacts, changes, plots, stats


def _counts_from_csv(path):
    """Independent of plots/artifacts/metrics: count (label, prediction) pairs with the csv module."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        names = next(reader)[3:]
        pairs = Counter((row[1], row[2]) for row in reader)
    return names, [[pairs[(true, pred)] for pred in names] for true in names]


@pytest.mark.parametrize(
    "png", [plots.TRAINING_CURVES, plots.CONFUSION_MATRIX, plots.ZERO_SHOT_CONFUSION_MATRIX, plots.CHANGES]
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
    with open(
        (trained_run.output_dir / png).with_suffix(".csv"), newline=""
    ) as f:  # the full matrix, as a table
        rows = list(csv.reader(f))
    assert rows[0][1:] == names and [row[0] for row in rows[1:]] == names
    assert [[int(cell) for cell in row[1:]] for row in rows[1:]] == counts


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
    table = (tmp_path / plots.CONFUSION_MATRIX).with_suffix(".csv").read_text()
    assert table == "true \\ predicted,cat,dog,car\ncat,1,1,0\ndog,0,1,0\ncar,1,0,2\n"


def _description(path):
    with Image.open(path) as image:
        return json.loads(image.text["Description"])


def _correct_by_image(path):
    with open(path, newline="") as f:
        return {row["image"]: (row["label"], row["prediction"]) for row in csv.DictReader(f)}


def test_training_curves_mark_the_selected_epoch_and_draw_dev_loss_and_visible_references(trained_run):
    state = json.loads((trained_run.output_dir / artifacts.TRAINER_STATE).read_text())
    drawn = _description(trained_run.output_dir / plots.TRAINING_CURVES)
    history = state["log_history"]
    assert drawn["dev_loss"] == [[e["step"], e["eval_loss"]] for e in history if "eval_loss" in e]
    assert len(drawn["dev_loss"]) == len([e for e in history if "eval_accuracy" in e]) > 1
    assert drawn["train_loss"] == [[e["step"], e["loss"]] for e in history if "loss" in e]
    kept = next(e for e in history if e.get("step") == state["best_global_step"] and "eval_accuracy" in e)
    assert (
        drawn["selected_epoch"] == kept["epoch"] and drawn["selected_dev_accuracy"] == kept["eval_accuracy"]
    )
    tied = [e for e in history if e.get("eval_accuracy") == kept["eval_accuracy"]]
    assert drawn["tied_epochs"] == [e["epoch"] for e in tied]
    if (
        len({e["eval_loss"] for e in tied}) > 1
    ):  # the legend says the loss chose among the tied (selection.py)
        assert drawn["tie_broken_by"] == "lowest dev loss"
        assert kept["eval_loss"] == min(e["eval_loss"] for e in tied)
    low, high = drawn["accuracy_limits"]
    assert low < 0 and high > 1  # a zero-shot line at 0.0 or a dev curve at 1.0 is inside the frame
    assert drawn["zero_shot_accuracy"] == trained_run.results["zero_shot_accuracy"]


def test_changes_png_holds_exactly_the_images_whose_correctness_changed(trained_run):
    out = trained_run.output_dir
    zero_shot = _correct_by_image(out / artifacts.ZERO_SHOT_PREDICTIONS)
    fine_tuned = _correct_by_image(out / artifacts.PREDICTIONS)
    fixed = {i for i, (label, pred) in fine_tuned.items() if pred == label and zero_shot[i][1] != label}
    broken = {i for i, (label, pred) in fine_tuned.items() if pred != label and zero_shot[i][1] == label}
    drawn = _description(out / plots.CHANGES)
    assert {r["image"] for r in drawn["images"] if r["kind"] == "fixed"} == fixed
    assert {r["image"] for r in drawn["images"] if r["kind"] == "broken"} == broken
    assert fixed  # the smoke run learns: something changed
    labels, zs_pred, _ = artifacts.read_predictions(out / artifacts.ZERO_SHOT_PREDICTIONS)
    _, ft_pred, _ = artifacts.read_predictions(out / artifacts.PREDICTIONS)
    mcnemar = stats.mcnemar(labels, zs_pred, ft_pred)
    assert (drawn["b"], drawn["c"]) == (mcnemar["b"], mcnemar["c"]) == (len(broken), len(fixed))
    for row in drawn["images"]:
        assert (row["true"], row["zero_shot"]) == zero_shot[row["image"]]
        assert row["fine_tuned"] == fine_tuned[row["image"]][1]


def test_changed_images_rows_carry_files_and_probabilities(trained_run, image_root):
    rows = changes.changed_images(trained_run.output_dir)
    assert rows and all(row.path == image_root / row.image and row.path.is_file() for row in rows)
    with open(trained_run.output_dir / artifacts.PREDICTIONS, newline="") as f:
        by_image = {row["image"]: row for row in csv.DictReader(f)}
    for row in rows[:5]:
        assert row.fine_tuned_probs[row.fine_tuned] == float(by_image[row.image][row.fine_tuned])
        assert sum(row.zero_shot_probs.values()) == pytest.approx(1, abs=1e-4)


def test_both_wrong_with_other_labels_is_no_change(tmp_path):
    names = ["cat", "dog", "car"]
    ids = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    labels = np.array([0, 1, 2, 0])
    zero_shot = np.eye(3)[[1, 1, 0, 0]] * 5.0  # wrong, right, wrong, right
    tuned = np.eye(3)[[0, 2, 1, 0]] * 5.0  # right (fixed), wrong (broken), wrong again (no change), right
    artifacts.write_predictions(tmp_path / artifacts.ZERO_SHOT_PREDICTIONS, ids, labels, zero_shot, names)
    artifacts.write_predictions(tmp_path / artifacts.PREDICTIONS, ids, labels, tuned, names)
    rows = changes.changed_images(tmp_path)
    assert [(r.image, r.kind, r.zero_shot, r.fine_tuned) for r in rows] == [
        ("a.jpg", "fixed", "dog", "cat"),
        ("b.jpg", "broken", "dog", "car"),
    ]
    assert all(r.path is None for r in rows)  # no run_config: the images' folder is unknown
    assert changes.discordant_counts(rows) == (1, 1)
    assert plots.save_plots(tmp_path)[0].name == plots.CHANGES
    assert _description(tmp_path / plots.CHANGES)["images"][1]["kind"] == "broken"


@pytest.mark.parametrize("n_classes, seed", [(51, 0), (1000, 1)])
def test_many_classes_draw_a_capped_figure_of_the_most_confused_and_keep_the_full_matrix(
    tmp_path, n_classes, seed
):
    rng = np.random.default_rng(seed)
    names = [f"class {i}" for i in range(n_classes)]
    labels = np.arange(n_classes)  # one val image per class, as in the 1,000-class run
    predicted = np.where(rng.random(n_classes) < 0.3, rng.integers(0, n_classes, n_classes), labels)
    logits = np.eye(n_classes, dtype=np.float32)[predicted] * 5.0
    csv_path = tmp_path / artifacts.PREDICTIONS
    artifacts.write_predictions(csv_path, [f"{i}.jpg" for i in range(n_classes)], labels, logits, names)
    plots.plot_confusion_matrix(csv_path, tmp_path / "cm.png", "Val")
    with Image.open(tmp_path / "cm.png") as image:
        assert max(image.size) <= plots.MAX_FIGURE_INCHES * 100
        drawn = json.loads(image.text["Description"])
    csv_names, counts = _counts_from_csv(csv_path)
    # The full matrix, not the drawn part.
    assert drawn["class_names"] == csv_names and drawn["counts"] == counts
    # Independently: errors per class (as truth plus as prediction), most first, ties to the lower index.
    errors = [sum(counts[c]) + sum(row[c] for row in counts) - 2 * counts[c][c] for c in range(n_classes)]
    top = sorted(sorted(range(n_classes), key=lambda c: (-errors[c], c))[: plots.MOST_CONFUSED])
    assert drawn["drawn_classes"] == [csv_names[c] for c in top]
    assert len(drawn["drawn_classes"]) == plots.MOST_CONFUSED < n_classes


def test_fifty_classes_or_fewer_are_all_drawn(tmp_path):
    n = plots.MOST_CONFUSED
    names = [f"c{i}" for i in range(n)]
    labels = np.arange(n)
    artifacts.write_predictions(
        tmp_path / artifacts.PREDICTIONS, [f"{i}.jpg" for i in labels], labels, np.eye(n)[::-1] * 5.0, names
    )
    plots.plot_confusion_matrix(tmp_path / artifacts.PREDICTIONS, tmp_path / "cm.png", "Val")
    with Image.open(tmp_path / "cm.png") as image:
        assert json.loads(image.text["Description"])["drawn_classes"] == names
