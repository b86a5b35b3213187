"""Headless plots of a finished run, read from its artifacts in output_dir.

    python -m clip_lora.plots runs/demo   # training_curves.png, changes.png, confusion_matrix.png/.csv, zero_shot_...
    plots.save_plots(output_dir)       # the same, as the last step of train_clip_lora.main

Each PNG also carries the data it draws as JSON in the PNG text chunk "Description" (counts, curves, the changed
images), so a reader (or a test) can check the picture against the run's files without reading pixels.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clip_lora import artifacts, run_files  # noqa: E402
from clip_lora.card_text import selection  # noqa: E402
from clip_lora.changes_plot import plot_changes  # noqa: E402
from clip_lora.run_files import OPTIONAL_NUMBER as NUMBER  # noqa: E402
from metrics import confusion_matrix  # noqa: E402

TRAINING_CURVES = artifacts.TRAINING_CURVES
CONFUSION_MATRIX = artifacts.CONFUSION_MATRIX
ZERO_SHOT_CONFUSION_MATRIX = artifacts.ZERO_SHOT_CONFUSION_MATRIX
TRAINER_STATE = artifacts.TRAINER_STATE
CHANGES = artifacts.CHANGES


# Accuracy axes reach a little past 0 and 1, so a reference line at exactly 0 or 1 is drawn inside the frame.
ACCURACY_LIMITS = (-0.05, 1.05)


def training_curve_data(
    trainer_state: dict, zero_shot_accuracy: float | None, metric: str = "accuracy"
) -> dict:
    """What training_curves.png draws, from trainer_state.json (also stored in the PNG's Description chunk)."""
    history = trainer_state.get("log_history", [])
    chosen = selection(trainer_state, metric)
    dev = {e["epoch"]: e["eval_accuracy"] for e in history if "eval_accuracy" in e and "epoch" in e}
    return {
        "train_loss": [[e["step"], e["loss"]] for e in history if "loss" in e and "step" in e],
        "dev_loss": [[e["step"], e["eval_loss"]] for e in history if "eval_loss" in e and "step" in e],
        "dev_accuracy": [[epoch, accuracy] for epoch, accuracy in dev.items()],
        "selected_epoch": chosen["kept_epoch"],
        "selected_dev_accuracy": dev.get(chosen["kept_epoch"]),
        "tied_epochs": chosen["tied_epochs"],
        # What chose among the tied: their dev loss (selection.py), or, in an older run, being the first.
        "tie_broken_by": "lowest dev loss"
        if chosen["by_rule"] and len({v for v in chosen["tied_values"] if v is not None}) > 1
        else "first",
        "zero_shot_accuracy": zero_shot_accuracy,
        "accuracy_limits": list(ACCURACY_LIMITS),
    }


def plot_training_curves(
    trainer_state: dict, zero_shot_accuracy: float | None, path: str | Path, metric: str = "accuracy"
) -> Path:
    """Train and dev loss per step (left); dev accuracy per epoch, the selected epoch marked, zero-shot as a line."""
    data = training_curve_data(trainer_state, zero_shot_accuracy, metric)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    if data["train_loss"]:
        ax_loss.plot(*zip(*data["train_loss"], strict=True), marker=".", label="train loss")
    if data["dev_loss"]:
        ax_loss.plot(*zip(*data["dev_loss"], strict=True), marker="o", label="dev loss (each evaluation)")
    ax_loss.set(xlabel="step", ylabel="loss", title="Loss")
    if data["dev_accuracy"]:
        ax_acc.plot(*zip(*data["dev_accuracy"], strict=True), marker="o", label="dev accuracy")
    if data["selected_epoch"] is not None and data["selected_dev_accuracy"] is not None:
        ties = len(data["tied_epochs"])
        note = f", {data['tie_broken_by']} of {ties} tied" if ties > 1 else ""
        ax_acc.axvline(data["selected_epoch"], color="tab:green", linestyle=":", linewidth=1)
        ax_acc.plot(
            [data["selected_epoch"]],
            [data["selected_dev_accuracy"]],
            marker="*",
            markersize=16,
            color="tab:green",
            linestyle="none",
            label=f"selected: epoch {data['selected_epoch']:g} ({data['selected_dev_accuracy']:.4f}{note})",
        )
    if zero_shot_accuracy is not None:
        ax_acc.axhline(
            zero_shot_accuracy,
            color="tab:red",
            linestyle="--",
            linewidth=2,
            label=f"zero-shot (val) {zero_shot_accuracy:.4f}",
        )
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Dev accuracy per epoch", ylim=ACCURACY_LIMITS)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return artifacts.save_figure(fig, path, data)


# Beyond this many classes a labelled n x n figure is unreadable and its size grows as n^2 (a 1,000-class run was
# OOM-killed drawing a 60,000 px figure): the figure shows the MOST_CONFUSED classes with the most errors instead,
# and the full matrix stays in the PNG's Description JSON.
MOST_CONFUSED = 50
# Inches per side at most (2,000 px at dpi 100), whatever the number of classes.
MAX_FIGURE_INCHES = 20.0


def most_confused(counts: np.ndarray, k: int = MOST_CONFUSED) -> list[int]:
    """Indices of the k classes with the most errors (wrong as the true class plus wrong as the prediction),
    in class order; ties go to the lower index, so the choice is deterministic."""
    errors = counts.sum(axis=0) + counts.sum(axis=1) - 2 * np.diag(counts)
    order = np.lexsort((np.arange(len(errors)), -errors))  # most errors first, then class index
    return sorted(int(i) for i in order[:k])


def plot_confusion_matrix(predictions_csv: str | Path, path: str | Path, title: str) -> np.ndarray:
    """Confusion matrix (rows: true class, columns: predicted) of a predictions CSV; returns the full counts.

    Up to MOST_CONFUSED classes all are drawn; beyond, the MOST_CONFUSED most confused (their sub-matrix)."""
    labels, predictions, class_names = artifacts.read_predictions(predictions_csv)
    counts = confusion_matrix(labels, predictions, len(class_names))
    shown = list(range(len(class_names)))
    if len(shown) > MOST_CONFUSED:
        shown = most_confused(counts)
        title = f"{title}, {MOST_CONFUSED} most confused of {len(class_names)} classes"
    drawn = counts[np.ix_(shown, shown)]
    names = [class_names[i] for i in shown]
    n = len(shown)
    size = min(MAX_FIGURE_INCHES, max(5.0, 0.6 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(drawn, cmap="Blues")
    ax.set_xticks(range(n), labels=names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=names, fontsize=8)
    ax.set(
        xlabel="predicted",
        ylabel="true",
        title=f"{title} (accuracy {np.trace(counts) / max(counts.sum(), 1):.4f})",
    )
    threshold = drawn.max() / 2 if drawn.size else 0
    if n <= 30:  # numbers stop being readable beyond that
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(drawn[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if drawn[i, j] > threshold else "black",
                )
    fig.tight_layout()
    description = json.dumps(
        {
            "class_names": class_names,
            "counts": counts.tolist(),
            "drawn_classes": [class_names[i] for i in shown],
        }
    )
    artifacts.save_figure(fig, path, description)
    write_confusion_csv(counts, class_names, Path(path).with_suffix(".csv"))
    return counts


def write_confusion_csv(counts: np.ndarray, class_names: list[str], path: Path) -> None:
    """The full matrix beside its figure (which draws at most MOST_CONFUSED classes): a header row of predicted
    class names, then one row per true class, its name first. Names are quoted by the csv module."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted", *class_names])
    writer.writerows([name, *row] for name, row in zip(class_names, counts.tolist(), strict=True))
    artifacts.atomic_write_text(path, buffer.getvalue())


def save_plots(output_dir: str | Path) -> list[Path]:
    """Write every plot whose inputs exist in output_dir; returns the written paths."""
    out = Path(output_dir)
    results = (
        run_files.read_json_object(out / artifacts.ALL_RESULTS, optional={"zero_shot_accuracy": NUMBER})
        if (out / artifacts.ALL_RESULTS).exists()
        else {}
    )
    config = artifacts.read_run_config(out)
    metric = (config.get("metric_for_best_model") or "accuracy").removeprefix("eval_")
    written = []
    if (out / TRAINER_STATE).exists():  # absent in evaluation-only runs
        state = run_files.read_trainer_state(out / TRAINER_STATE)
        curves = plot_training_curves(state, results.get("zero_shot_accuracy"), out / TRAINING_CURVES, metric)
        written.append(curves)
    final, zero_shot = out / artifacts.PREDICTIONS, out / artifacts.ZERO_SHOT_PREDICTIONS
    # An evaluation of the base model alone has predictions == zero-shot predictions: nothing can have changed.
    if final.is_file() and zero_shot.is_file() and final.read_bytes() != zero_shot.read_bytes():
        written.append(plot_changes(out, out / CHANGES))
    if (out / artifacts.CALIBRATION).is_file():
        from clip_lora.reliability_plot import plot_reliability

        written.append(plot_reliability(out, out / artifacts.RELIABILITY))
    if (out / artifacts.WISE_FT_JSON).is_file() and (out / artifacts.CONTROL_JSON).is_file():
        from clip_lora.control_plot import plot_tradeoff

        written.append(plot_tradeoff(out, out / artifacts.WISE_FT_TRADEOFF_PNG))
    for csv_name, png_name, title in (
        (artifacts.PREDICTIONS, CONFUSION_MATRIX, "Val, selected adapter"),
        (artifacts.ZERO_SHOT_PREDICTIONS, ZERO_SHOT_CONFUSION_MATRIX, "Val, zero-shot"),
    ):
        if (out / csv_name).is_file():
            plot_confusion_matrix(out / csv_name, out / png_name, title)
            written.append(out / png_name)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the plots of a finished run into its output_dir.")
    parser.add_argument("output_dir")
    for path in save_plots(parser.parse_args(argv).output_dir):
        print(path)


if __name__ == "__main__":
    main()
