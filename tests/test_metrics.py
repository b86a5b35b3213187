"""Tests for metrics.py: run `python -m pytest tests/test_metrics.py -q`."""

import json
import re
from types import SimpleNamespace

import evaluate
import numpy as np
import pytest

import metrics
from metrics import (
    Accuracy,
    ClassificationReport,
    MacroF1,
    classification_report,
    compute_metrics,
    confusion_matrix,
    format_report,
    report_to_markdown,
    save_report,
)

# Hand-worked case: 3 named classes + "ghost" with no support and no prediction.
#   refs  = 0 0 0 1 1 2 2 2 2 ; preds = 0 0 1 1 2 2 2 0 1
#   class 0: tp 2, predicted 3, support 3 -> p 2/3, r 2/3, f1 2/3
#   class 1: tp 1, predicted 3, support 2 -> p 1/3, r 1/2, f1 0.4
#   class 2: tp 2, predicted 3, support 4 -> p 2/3, r 1/2, f1 4/7
REFS = [0, 0, 0, 1, 1, 2, 2, 2, 2]
PREDS = [0, 0, 1, 1, 2, 2, 2, 0, 1]
NAMES = ["cat", "dog", "bird", "ghost"]
EXPECTED = {
    "cat": (2 / 3, 2 / 3, 2 / 3, 3),
    "dog": (1 / 3, 1 / 2, 0.4, 2),
    "bird": (2 / 3, 1 / 2, 4 / 7, 4),
    "ghost": (0.0, 0.0, 0.0, 0),
}


@pytest.fixture(scope="module")
def report():
    return classification_report(REFS, PREDS, NAMES)


def test_hand_computed_per_class(report):
    for name, (p, r, f1, support) in EXPECTED.items():
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(p)
        assert row["recall"] == pytest.approx(r)
        assert row["f1"] == pytest.approx(f1)
        assert row["support"] == support
    assert list(report["per_class"]) == NAMES


def test_hand_computed_averages(report):
    assert report["total"] == len(REFS)
    assert sum(row["support"] for row in report["per_class"].values()) == report["total"]
    assert report["accuracy"] == pytest.approx(5 / 9)
    # "ghost" (no support, never predicted) is left out of the macro mean.
    assert report["macro avg"]["f1"] == pytest.approx((2 / 3 + 0.4 + 4 / 7) / 3)
    assert report["macro avg"]["precision"] == pytest.approx((2 / 3 + 1 / 3 + 2 / 3) / 3)
    assert report["weighted avg"]["f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.4 + 4 * 4 / 7) / 9)
    # Weighted recall is always the accuracy.
    assert report["weighted avg"]["recall"] == pytest.approx(report["accuracy"])
    assert report["macro avg"]["f1"] != pytest.approx(report["weighted avg"]["f1"])


def test_zero_division_gives_zero():
    # Class 1 is predicted but never true (recall 0/0); class 2 is true but never predicted (precision 0/0).
    rep = classification_report([0, 0, 2], [0, 1, 0], ["a", "b", "c"])
    assert rep["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert rep["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # Class "a": tp 1 of 2 predicted, 2 true -> f1 1/2. "b" and "c" still count in the macro mean:
    # each occurs in references or predictions.
    assert rep["per_class"]["a"]["f1"] == pytest.approx(0.5)
    assert rep["macro avg"]["f1"] == pytest.approx(0.5 / 3)
    empty = classification_report([], [], ["a"])
    assert empty["accuracy"] == 0.0 and empty["macro avg"]["f1"] == 0.0 and empty["total"] == 0


def test_confusion_matrix_rows_true_cols_pred():
    cm = confusion_matrix(REFS, PREDS, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 1, 2, 0], [0, 0, 0, 0]]
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 0], 3)
    with pytest.raises(ValueError):
        classification_report([0, 1], [0], ["a", "b"])


def test_evaluate_modules_compute_and_add_batch():
    acc = Accuracy()
    assert isinstance(acc, evaluate.Metric)
    assert acc.compute(predictions=PREDS, references=REFS) == {"accuracy": pytest.approx(5 / 9)}
    f1 = MacroF1()
    for start in range(0, len(REFS), 4):
        f1.add_batch(predictions=PREDS[start : start + 4], references=REFS[start : start + 4])
    assert f1.compute() == {"macro_f1": pytest.approx((2 / 3 + 0.4 + 4 / 7) / 3)}
    # num_classes only bounds the ids (init or compute kwarg); absent classes add no zero F1.
    assert MacroF1(num_classes=10).compute(predictions=PREDS, references=REFS)["macro_f1"] == pytest.approx(
        (2 / 3 + 0.4 + 4 / 7) / 3
    )
    with pytest.raises(ValueError):
        MacroF1().compute(predictions=[0, 5], references=[0, 1], num_classes=3)
    rep = ClassificationReport().compute(predictions=PREDS, references=REFS, class_names=NAMES)
    assert rep == classification_report(REFS, PREDS, NAMES)
    # The module is reusable: a second compute starts from an empty buffer.
    acc.add(prediction=1, reference=1)
    assert acc.compute() == {"accuracy": 1.0}


def test_unwritable_hf_cache_falls_back(monkeypatch, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setattr(evaluate.config, "HF_METRICS_CACHE", blocker / "metrics")
    assert metrics._default_cache_dir() != str(blocker / "metrics")
    assert Accuracy().compute(predictions=[1], references=[1]) == {"accuracy": 1.0}


def test_compute_metrics_on_logits():
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 1.0], [0.5, 0.0, 0.2], [0.0, 0.1, 0.9]], dtype=np.float32)
    labels = np.array([0, 1, 2, 2])
    # Predictions 0 1 0 2: class 0 f1 2/3, class 1 f1 1, class 2 f1 2/3.
    expected = {"accuracy": pytest.approx(0.75), "macro_f1": pytest.approx((2 / 3 + 1 + 2 / 3) / 3)}
    assert compute_metrics(SimpleNamespace(predictions=logits, label_ids=labels)) == expected
    extra = np.zeros((4, 5))
    assert compute_metrics(SimpleNamespace(predictions=(logits, extra), label_ids=labels)) == expected


def _reference_report(refs, preds, num_classes):
    """Straightforward loop version of the report numbers, written independently of metrics.py."""
    rows = []
    for c in range(num_classes):
        tp = sum(1 for t, p in zip(refs, preds, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(refs, preds, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(refs, preds, strict=True) if t == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        rows.append((prec, rec, f1, tp + fn, tp + fp + fn > 0))
    present = [r for r in rows if r[4]]
    n = len(refs)
    return {
        "rows": rows,
        "accuracy": sum(t == p for t, p in zip(refs, preds, strict=True)) / n,
        "macro": [sum(r[i] for r in present) / len(present) for i in range(3)],
        "weighted": [sum(r[i] * r[3] for r in rows) / n for i in range(3)],
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_reference_loop_on_random_data(seed):
    rng = np.random.default_rng(seed)
    num_classes = 7
    # Class 6 is never true nor predicted (left out of the macro mean); class 5 is never a wrong guess.
    refs = rng.integers(0, num_classes - 1, size=200).tolist()
    preds = [t if rng.random() < 0.5 else int(rng.integers(0, num_classes - 2)) for t in refs]
    names = [f"c{i}" for i in range(num_classes)]
    rep = classification_report(refs, preds, names)
    ref = _reference_report(refs, preds, num_classes)
    for name, (prec, rec, f1, support, _) in zip(names, ref["rows"], strict=True):
        got = rep["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((prec, rec, f1))
        assert got["support"] == support
    assert rep["accuracy"] == pytest.approx(ref["accuracy"])
    macro = rep["macro avg"]
    weighted = rep["weighted avg"]
    assert [macro["precision"], macro["recall"], macro["f1"]] == pytest.approx(ref["macro"])
    assert [weighted["precision"], weighted["recall"], weighted["f1"]] == pytest.approx(ref["weighted"])
    assert MacroF1().compute(predictions=preds, references=refs)["macro_f1"] == pytest.approx(ref["macro"][2])


def test_format_report_layout(report):
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    for name in NAMES:
        matching = [line for line in lines if line.split() and line.split()[0] == name]
        assert len(matching) == 1
        assert matching[0].split()[1:] == [f"{v:.4f}" for v in EXPECTED[name][:3]] + [str(EXPECTED[name][3])]
    acc_line = next(line for line in lines if line.strip().startswith("accuracy"))
    assert acc_line.split() == ["accuracy", f"{5 / 9:.4f}", "9"]
    assert any(line.strip().startswith("macro avg") for line in lines)
    assert any(line.strip().startswith("weighted avg") for line in lines)
    # Right-aligned columns, as in sklearn: every data line has the same length.
    assert len({len(line) for line in lines if line.strip()}) == 1


def _parse_markdown_table(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    # Split on pipes that are not escaped with a backslash.
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])] for line in lines]


def test_report_to_markdown_is_a_table(report):
    rows = _parse_markdown_table(report_to_markdown(report))
    assert rows[0] == ["class", "precision", "recall", "f1", "support"]
    assert set("".join(rows[1])) <= set("-: ")
    body = rows[2:]
    # One row per class, then accuracy and macro avg.
    assert len(body) == len(NAMES) + 2
    assert all(len(row) == 5 for row in rows)
    assert [row[0] for row in body] == [*NAMES, "accuracy", "macro avg"]
    assert body[1][1:] == ["0.3333", "0.5000", "0.4000", "2"]
    assert body[-2][3:] == [f"{5 / 9:.4f}", "9"]


def test_markdown_escapes_pipes():
    rows = _parse_markdown_table(report_to_markdown(classification_report([0], [0], ["a|b"])))
    assert rows[2][0] == "a\\|b" and len(rows[2]) == 5


def test_save_report_writes_both_files(report, tmp_path):
    out = tmp_path / "run"
    save_report(report, out)
    assert json.loads((out / "classification_report.json").read_text()) == report
    assert (out / "classification_report.md").read_text() == report_to_markdown(report)
