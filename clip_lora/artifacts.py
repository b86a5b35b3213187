"""The files a run leaves behind, written and read in one place (they are the interface between steps and users).

write_predictions(path, image_ids, labels, logits, class_names)   # predictions.csv
read_predictions(path) -> (labels, predictions, class_names)      # ints, ints, names
read_prediction_table(path) -> (image ids, labels, predictions, class_names)
with atomic_write(path) as f: ...                                  # every artifact: whole or absent, never half
escape_path(path) -> one printable line                            # for logs, lists and error messages
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if (
    TYPE_CHECKING
):  # numpy is imported where arrays are handled: the CLI reads this module before any heavy import
    import numpy as np

# Every file name a run writes or reads, defined here only.
PREDICTIONS = "predictions.csv"
ZERO_SHOT_PREDICTIONS = "zero_shot_predictions.csv"
ALL_RESULTS = "all_results.json"
# Beside all_results.json, as Trainer.save_metrics("train") / ("eval") write them in HF's example scripts.
TRAIN_RESULTS = "train_results.json"
EVAL_RESULTS = "eval_results.json"
RUN_CONFIG = "run_config.json"
MODEL_CARD = "README.md"
CLASSIFICATION_REPORT_JSON = "classification_report.json"
CLASSIFICATION_REPORT_MD = "classification_report.md"
TRAINER_STATE = "trainer_state.json"
TRAINING_CURVES = "training_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
ZERO_SHOT_CONFUSION_MATRIX = "zero_shot_confusion_matrix.png"
CHANGES = "changes.png"  # val images whose prediction fine-tuning fixed or broke
EXPORT_CLASS_PROMPTS = "class_prompts.json"  # in a merged export: class names and prompt templates
EXPORT_CLASS_EMBEDDINGS = (
    "class_embeddings.safetensors"  # in a merged export: (C, D) class embeddings, logit scale
)
TEMPERATURE = (
    "temperature.json"  # T fitted on dev, beside the adapter: read by predict, export, the ONNX export
)
CALIBRATION = "calibration.json"  # ECE / NLL / Brier on val and the reliability diagram's bins
RELIABILITY = "reliability.png"
CONTROL_JSON = "control.json"  # the control set (other classes): accuracy zero-shot -> fine-tuned, per alpha
CONTROL_PREDICTIONS = "control_predictions.csv"
CONTROL_ZERO_SHOT_PREDICTIONS = "control_zero_shot_predictions.csv"
WISE_FT_TRADEOFF_PNG = "wise_ft_control.png"  # task (val) accuracy against control accuracy per alpha
WISE_FT_JSON = "wise_ft.json"
WISE_FT_PNG = "wise_ft.png"
SKIPPED_IMAGES = "skipped_images.txt"
SWEEP_SUMMARY_JSON = "summary.json"
SWEEP_SUMMARY_MD = "summary.md"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)  # what a saved LoRA adapter is (safetensors only)
RUN_COMPLETE = ".run_complete"  # written last: a run is finished when this exists, whatever else is there
RUN_LOCK = ".run.lock"  # held (flock) by the run writing into the folder; names its pid and host
ATOMIC_SUFFIX = ".partial"  # temp files of atomic_write: name.<pid>.partial, renamed over name when complete


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs):
    """Usage: with atomic_write(path) as f: f.write(...). The file appears whole (fsync + rename) or not at all:
    a kill or a full disk mid-write leaves the previous version (or nothing), never a truncated file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{ATOMIC_SUFFIX}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def escape_path(path: str | Path | bytes) -> str:
    """A file name as one printable line: newlines, tabs, control characters and undecodable bytes (which Python
    keeps as surrogates) are written as escapes, so a log record or a list entry is always one line."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        for ch in text
    )


def listing(names, shown: int = 10) -> str:
    """`a, b, c, and 990 more`: the first `shown` of a list, so a line naming them stays one readable line."""
    names = list(names)
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(map(escape_path, names[:shown])) + more


def softmax(logits: np.ndarray) -> np.ndarray:
    import numpy as np

    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def write_predictions(
    path: str | Path, image_ids: list[str], labels: np.ndarray, logits: np.ndarray, class_names: list[str]
) -> None:
    """One row per image: image, label, prediction (class names), then one probability column per class."""
    import numpy as np

    if not len(image_ids) == len(labels) == len(logits):
        raise ValueError(f"{len(image_ids)} images, {len(labels)} labels and {len(logits)} logit rows differ")
    probs = softmax(np.asarray(logits, dtype=np.float64))
    predictions = probs.argmax(axis=1)
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "prediction", *class_names])
        for image_id, label, pred, row in zip(image_ids, labels, predictions, probs, strict=True):
            writer.writerow(
                [
                    escape_path(image_id),
                    class_names[int(label)],
                    class_names[int(pred)],
                    *(f"{p:.6f}" for p in row),
                ]
            )


def read_prediction_table(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """(image ids, label indices, predicted indices, class names) from a predictions CSV."""
    import numpy as np

    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        class_names = header[3:]
        index = {name: i for i, name in enumerate(class_names)}
        rows = [(row[0], index[row[1]], index[row[2]]) for row in reader]
    ids = [row[0] for row in rows]
    labels, predictions = (
        (np.array(column, dtype=np.int64) for column in list(zip(*rows, strict=True))[1:])
        if rows
        else (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    )
    return ids, labels, predictions, class_names


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(label indices, predicted indices, class names) from a predictions CSV."""
    _, labels, predictions, class_names = read_prediction_table(path)
    return labels, predictions, class_names


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def read_run_config(output_dir: str | Path) -> dict:
    """A run's run_config.json, or {} where there is none (a pushed repo, an older run)."""
    from clip_lora.run_files import read_json_object  # run_files names artifacts' files in its docs only

    path = Path(output_dir) / RUN_CONFIG
    return read_json_object(path) if path.exists() else {}


def write_json(path: str | Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_results(output_dir: str | Path, results: dict, train: dict, evaluation: dict) -> None:
    """The results files of a run, as HF's example scripts leave them: train_results.json (Trainer's training
    metrics; absent when nothing was trained), eval_results.json (the final val evaluation) and all_results.json
    (everything: zero-shot, dev, calibration, ...). all_results.json last: a folder holding it looks like a run."""
    out = Path(output_dir)
    if train:
        write_json(out / TRAIN_RESULTS, train)
    write_json(out / EVAL_RESULTS, evaluation)
    write_json(out / ALL_RESULTS, results)


def save_figure(fig, path: str | Path, data) -> Path:
    """A matplotlib figure as a PNG, written atomically, with the data it draws as JSON in its Description text
    chunk (every plot of a run keeps its numbers); the figure is closed."""
    import matplotlib.pyplot as plt

    with atomic_write(path, "wb") as f:
        fig.savefig(
            f, format="png", metadata={"Description": data if isinstance(data, str) else json.dumps(data)}
        )
    plt.close(fig)
    return Path(path)
