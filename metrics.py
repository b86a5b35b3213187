"""Offline classification metrics as `evaluate` modules, plus a per-class report.

Usage:
    from metrics import Accuracy, MacroF1, compute_metrics, classification_report, save_report
    Accuracy().compute(predictions=[0, 1], references=[0, 0])          # {"accuracy": 0.5}
    trainer = Trainer(..., compute_metrics=compute_metrics)             # {"accuracy", "macro_f1"}
    report = classification_report(refs, preds, class_names); save_report(report, output_dir)

`evaluate.load("accuracy")` needs the Hub, so the metrics are defined here as `evaluate.Metric`
subclasses: instantiating them touches no network, only a cache directory (see `_LocalMetric`).
Zero divisions give 0.0, like sklearn's `zero_division=0`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import datasets
import evaluate
import numpy as np

from clip_lora.artifacts import CLASSIFICATION_REPORT_JSON, CLASSIFICATION_REPORT_MD, atomic_write_text

_INT_FEATURES = datasets.Features(
    {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
)
_INPUTS_DOC = """
Args:
    predictions: predicted class ids (ints).
    references: true class ids (ints).
"""


def _default_cache_dir() -> str:
    # evaluate always makedirs <cache_dir>/<name>/<config> in __init__; fall back to the temp dir when the
    # HF cache (e.g. a read-only home) cannot be written, so the metrics still work there.
    path = Path(evaluate.config.HF_METRICS_CACHE)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return str(path)
    except OSError:
        pass
    return os.path.join(tempfile.gettempdir(), "hf_metrics_cache")


class _LocalMetric(evaluate.Metric):
    """Shared plumbing: int features and in-memory storage for single-process use.

    keep_in_memory defaults to True when num_process == 1 (no arrow cache file or lock is written);
    distributed use (num_process > 1) keeps evaluate's file-based rendez-vous.
    """

    _description = ""

    def __init__(self, *args, keep_in_memory: bool | None = None, cache_dir: str | None = None, **kwargs):
        if keep_in_memory is None:
            keep_in_memory = kwargs.get("num_process", 1) == 1
        super().__init__(
            *args, keep_in_memory=keep_in_memory, cache_dir=cache_dir or _default_cache_dir(), **kwargs
        )

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self._description,
            citation="",
            inputs_description=_INPUTS_DOC,
            features=_INT_FEATURES,
        )


class Accuracy(_LocalMetric):
    """Usage: `Accuracy().compute(predictions=[0, 1], references=[0, 0])` -> {"accuracy": 0.5}."""

    _description = "Fraction of predictions equal to the references."

    def _compute(self, predictions, references):
        preds, refs = _as_int_arrays(predictions, references)
        return {"accuracy": float((preds == refs).mean()) if refs.size else 0.0}


class MacroF1(_LocalMetric):
    """Usage: `MacroF1(num_classes=10).compute(predictions=p, references=r)` -> {"macro_f1": float}.

    Unweighted mean of per-class F1 over the classes that occur in references or predictions (a class
    with no support and no prediction is excluded, as sklearn does with labels=None). num_classes
    (init or compute kwarg, compute wins) only bounds the valid ids; it adds no zero-F1 classes.
    """

    _description = "Macro-averaged F1 over classes present in predictions or references."

    def __init__(self, *args, num_classes: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_classes = num_classes

    def _compute(self, predictions, references, num_classes: int | None = None):
        preds, refs = _as_int_arrays(predictions, references)
        n = num_classes if num_classes is not None else self.num_classes
        if n is None:
            n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 1
        stats = _per_class_stats(confusion_matrix(refs, preds, n))
        return {"macro_f1": _present_mean(stats, "f1")}


class ClassificationReport(_LocalMetric):
    """Usage: `ClassificationReport().compute(predictions=p, references=r, class_names=names)` -> report dict."""

    _description = "Per-class precision/recall/F1/support with accuracy, macro and weighted averages."

    def _compute(self, predictions, references, class_names=None):
        if class_names is None:
            raise ValueError("ClassificationReport.compute needs class_names=[...]")
        return classification_report(references, predictions, class_names)


def _as_int_arrays(predictions, references) -> tuple[np.ndarray, np.ndarray]:
    preds = np.asarray(predictions, dtype=np.int64).reshape(-1)
    refs = np.asarray(references, dtype=np.int64).reshape(-1)
    if preds.shape != refs.shape:
        raise ValueError(f"{preds.size} predictions vs {refs.size} references")
    return preds, refs


def confusion_matrix(references, predictions, num_classes: int) -> np.ndarray:
    """Usage: `confusion_matrix([0, 1], [1, 1], 2)` -> int64 array, rows = true class, cols = predicted."""
    preds, refs = _as_int_arrays(predictions, references)
    for name, ids in (("references", refs), ("predictions", preds)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name} contain ids outside [0, {num_classes}): {np.unique(ids).tolist()}")
    flat = np.bincount(refs * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _per_class_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "present": (support + predicted) > 0,
    }


def _present_mean(stats: dict[str, np.ndarray], key: str) -> float:
    present = stats["present"]
    return float(stats[key][present].mean()) if present.any() else 0.0


def compute_metrics(eval_pred) -> dict[str, float]:
    """Usage: `Trainer(..., compute_metrics=compute_metrics)`; logits (N, C) -> {"accuracy", "macro_f1"}."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    # Trainer hands over a tuple when the model returns extra outputs; the logits come first.
    if isinstance(logits, tuple):
        logits = logits[0]
    if isinstance(labels, tuple):
        labels = labels[0]
    logits = np.asarray(logits)
    preds = logits.argmax(axis=-1)
    refs = np.asarray(labels).reshape(-1)
    return {
        **Accuracy().compute(predictions=preds, references=refs),
        **MacroF1(num_classes=logits.shape[-1]).compute(predictions=preds, references=refs),
    }


def classification_report(references, predictions, class_names, unreadable: dict | None = None) -> dict:
    """Usage: `classification_report(refs, preds, ["cat", "dog"])` -> {"per_class", "accuracy", "macro avg",
    "weighted avg", "total"}.

    Every class name gets a row; the macro average skips classes with no support and no prediction
    (matching MacroF1), the weighted average weights by support. `unreadable` ({class index: images}): images of
    the split that became unreadable during the run; their classes' rows say how many (a row of zeros from a class
    whose every image was unreadable must not read like a class absent by design).
    """
    class_names = [str(name) for name in class_names]
    preds, refs = _as_int_arrays(predictions, references)
    cm = confusion_matrix(refs, preds, len(class_names))
    stats = _per_class_stats(cm)
    total = int(refs.size)
    per_class = {
        name: {
            "precision": float(stats["precision"][i]),
            "recall": float(stats["recall"][i]),
            "f1": float(stats["f1"][i]),
            "support": int(stats["support"][i]),
            **({"unreadable": int(unreadable[i])} if unreadable and unreadable.get(i) else {}),
        }
        for i, name in enumerate(class_names)
    }
    keys = ("precision", "recall", "f1")
    weights = stats["support"] / total if total else np.zeros(len(class_names))
    return {
        "per_class": per_class,
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "macro avg": {**{k: _present_mean(stats, k) for k in keys}, "support": total},
        "weighted avg": {**{k: float((stats[k] * weights).sum()) for k in keys}, "support": total},
        "total": total,
    }


def format_report(report: dict, digits: int = 4) -> str:
    """Usage: `print(format_report(report))`; same layout as sklearn.metrics.classification_report(digits=4)."""
    names = list(report["per_class"])
    width = max([len("weighted avg"), digits, *map(len, names)])
    headers = ["precision", "recall", "f1-score", "support"]
    lines = [("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width), ""]
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}"

    def row(name: str, values: dict) -> str:
        return row_fmt.format(
            name,
            values["precision"],
            values["recall"],
            values["f1"],
            values["support"],
            width=width,
            digits=digits,
        )

    lines += [row(name, report["per_class"][name]) for name in names]
    lines.append("")
    acc_fmt = "{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}"
    lines.append(
        acc_fmt.format("accuracy", "", "", report["accuracy"], report["total"], width=width, digits=digits)
    )
    lines += [row(name, report[name]) for name in ("macro avg", "weighted avg")]
    note = unreadable_note(report)
    return "\n".join(lines + ([f"\n{note}"] if note else [])) + "\n"


def unreadable_note(report: dict) -> str | None:
    """One line naming the classes whose images became unreadable during the run (not in the support), or None."""
    rows = [(name, values) for name, values in report["per_class"].items() if values.get("unreadable")]
    if not rows:
        return None
    return "Unreadable during the run, left out of the numbers: " + ", ".join(
        f"{name} {values['unreadable']}"
        + (" (no readable image: its row is not a measurement)" if not values["support"] else "")
        for name, values in rows
    )


def report_to_markdown(report: dict, digits: int = 4) -> str:
    """Usage: `Path("r.md").write_text(report_to_markdown(report))`; one row per class, then accuracy and macro avg."""

    def cells(values: dict) -> list[str]:
        return [f"{values[k]:.{digits}f}" for k in ("precision", "recall", "f1")] + [str(values["support"])]

    rows = [["class", "precision", "recall", "f1", "support"], ["---", "---:", "---:", "---:", "---:"]]
    # A "|" in a class name would split the cell.
    rows += [[name.replace("|", "\\|"), *cells(values)] for name, values in report["per_class"].items()]
    rows.append(["accuracy", "", "", f"{report['accuracy']:.{digits}f}", str(report["total"])])
    rows.append(["macro avg", *cells(report["macro avg"])])
    note = unreadable_note(report)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n" + (f"\n{note}\n" if note else "")


def save_report(report: dict, output_dir, split: str | None = None, model: str | None = None) -> None:
    """Usage: `save_report(report, "runs/x", split="val", model="LoRA adapter")` -> classification_report.json/.md.

    `split` and `model` say what the numbers describe: they become keys of the JSON and the title of the Markdown."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    described = {**({"split": split} if split else {}), **({"model": model} if model else {}), **report}
    atomic_write_text(out / CLASSIFICATION_REPORT_JSON, json.dumps(described, indent=2) + "\n")
    title = ", ".join(part for part in (split and f"{split} split", model) if part)
    heading = f"# Classification report: {title} ({report['total']} images)\n\n" if title else ""
    atomic_write_text(out / CLASSIFICATION_REPORT_MD, heading + report_to_markdown(report))
