"""metrics on val sets of every shape, not only balanced ones: unbalanced class counts, a class with one image,
classes never predicted; every cell and both averages against scikit-learn, the printed report against sklearn's own
text, the Markdown table (the model card's per-class table) against the same numbers; ids outside the classes and
empty inputs.

Run: python -m pytest tests/test_metrics_shapes.py -q
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk
from transformers import EvalPrediction

from metrics import (
    Accuracy,
    MacroF1,
    classification_report,
    compute_metrics,
    confusion_matrix,
    format_report,
    report_to_markdown,
    save_report,
)

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None)


@st.composite
def unbalanced_val_sets(draw):
    """(class names, references, predictions): every class has images, in unequal numbers, one class exactly one;
    a fraction of the images wrong, some of them towards one favoured class (so precision and recall differ)."""
    num_classes = draw(st.integers(2, 7))
    counts = draw(st.lists(st.integers(1, 40), min_size=num_classes, max_size=num_classes))
    counts[draw(st.integers(0, num_classes - 1))] = 1
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    refs = rng.permutation(np.repeat(np.arange(num_classes), counts))
    wrong = rng.random(len(refs)) < draw(st.sampled_from([0.0, 0.1, 0.3, 0.7]))
    favoured = draw(st.integers(0, num_classes - 1))
    guesses = np.where(rng.random(len(refs)) < 0.5, favoured, rng.integers(0, num_classes, len(refs)))
    preds = np.where(wrong, guesses, refs)
    names = [f"class {chr(97 + i) * (i + 1)}" for i in range(num_classes)]  # names of unequal widths
    return names, refs, preds


@SETTINGS
@given(unbalanced_val_sets())
def test_every_cell_and_both_averages_match_sklearn_on_unbalanced_data(case):
    names, refs, preds = case
    labels = list(range(len(names)))
    report = classification_report(refs, preds, names)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        refs, preds, labels=labels, zero_division=0
    )
    for i, name in enumerate(names):
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision[i], recall[i], f1[i]))
        assert row["support"] == support[i] == np.sum(refs == i)
    for average in ("macro", "weighted"):
        expected = sk.precision_recall_fscore_support(
            refs, preds, labels=labels, average=average, zero_division=0
        )[:3]
        got = report[f"{average} avg"]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(expected), average
        assert got["support"] == len(refs)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(refs, preds))
    assert report["total"] == len(refs)
    assert MacroF1().compute(predictions=preds, references=refs)["macro_f1"] == pytest.approx(
        sk.f1_score(refs, preds, labels=labels, average="macro", zero_division=0)
    )


@SETTINGS
@given(unbalanced_val_sets())
def test_the_printed_report_is_sklearns_own_text(case):
    names, refs, preds = case
    expected = sk.classification_report(
        refs, preds, labels=range(len(names)), target_names=names, digits=4, zero_division=0
    )
    assert format_report(classification_report(refs, preds, names)) == expected


@SETTINGS
@given(unbalanced_val_sets())
def test_the_markdown_table_holds_the_reports_numbers(case):
    names, refs, preds = case
    report = classification_report(refs, preds, names)
    rows = [line.strip("|").split("|") for line in report_to_markdown(report).splitlines()]
    cells = {cell[0].strip(): [c.strip() for c in cell[1:]] for cell in rows[2:]}
    assert list(cells) == [*names, "accuracy", "macro avg"]
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        refs, preds, labels=range(len(names)), zero_division=0
    )
    for i, name in enumerate(names):
        expected = [f"{precision[i]:.4f}", f"{recall[i]:.4f}", f"{f1[i]:.4f}", str(support[i])]
        assert cells[name] == expected, name
    assert cells["accuracy"] == ["", "", f"{sk.accuracy_score(refs, preds):.4f}", str(len(refs))]
    macro = sk.precision_recall_fscore_support(refs, preds, average="macro", zero_division=0)[:3]
    assert cells["macro avg"] == [f"{v:.4f}" for v in macro] + [str(len(refs))]


def test_unbalanced_data_tells_macro_from_weighted():
    # The one-image class is always wrong, the big one always right: the averages must part.
    refs, preds = np.array([0] * 20 + [1]), np.array([0] * 21)
    report = classification_report(refs, preds, ["big", "one image"])
    assert report["macro avg"]["recall"] == pytest.approx(0.5)
    assert report["weighted avg"]["recall"] == pytest.approx(20 / 21)
    assert report["per_class"]["one image"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


@pytest.mark.parametrize(
    ("refs", "preds"),
    [([0, 1, -1], [0, 1, 1]), ([0, 1, 3], [0, 1, 1]), ([0, 1, 1], [0, -1, 1]), ([0, 1, 1], [0, 3, 1])],
    ids=["negative reference", "reference = class count", "negative prediction", "prediction = class count"],
)
def test_ids_outside_the_classes_are_refused(refs, preds):
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        confusion_matrix(refs, preds, 3)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        classification_report(refs, preds, ["a", "b", "c"])


def test_no_images_score_zero_everywhere():
    assert MacroF1().compute(predictions=[], references=[])["macro_f1"] == 0.0
    assert MacroF1(num_classes=3).compute(predictions=[], references=[])["macro_f1"] == 0.0
    assert Accuracy().compute(predictions=[], references=[])["accuracy"] == 0.0
    report = classification_report([], [], ["a", "b"])
    nothing = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro avg"] == report["weighted avg"] == nothing
    assert report["per_class"]["a"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_compute_metrics_takes_the_first_of_the_tuples_trainer_hands_over():
    # A model returning extra outputs makes Trainer pass tuples; the logits and the labels come first.
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    labels = np.array([1, 1, 1])
    got = compute_metrics(EvalPrediction(predictions=(logits, np.zeros(3)), label_ids=(labels, np.zeros(3))))
    assert got == pytest.approx(
        {"accuracy": 2 / 3, "macro_f1": sk.f1_score(labels, [1, 0, 1], average="macro", zero_division=0)}
    )


def test_reports_are_saved_into_a_new_nested_folder_and_again_over_themselves(tmp_path):
    out = tmp_path / "runs" / "new" / "eval"  # a folder no one made yet, two levels deep
    report = classification_report([0, 1, 1], [0, 1, 0], ["a", "b"])
    for _ in range(2):  # a rerun writes the same files again
        save_report(report, out, split="val", model="m")
        assert json.loads((out / "classification_report.json").read_text()) == {
            "split": "val",
            "model": "m",
            **report,
        }
