"""metrics against scikit-learn (the independent reference) on random labels (hypothesis), including classes that
are only predicted, classes never seen, batches smaller than the number of classes and empty inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk
from transformers import EvalPrediction

from metrics import Accuracy, MacroF1, classification_report, compute_metrics, confusion_matrix

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None)


@st.composite
def labelled(draw, max_classes: int = 6):
    num_classes = draw(st.integers(2, max_classes))
    n = draw(st.integers(1, 25))
    ids = st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n)
    return num_classes, np.array(draw(ids)), np.array(draw(ids))


@SETTINGS
@given(labelled())
def test_accuracy_macro_f1_and_confusion_matrix_match_sklearn(case):
    num_classes, refs, preds = case
    assert Accuracy().compute(predictions=preds, references=refs)["accuracy"] == pytest.approx(
        sk.accuracy_score(refs, preds)
    )
    expected_f1 = sk.f1_score(refs, preds, average="macro", zero_division=0)
    got = MacroF1(num_classes=num_classes).compute(predictions=preds, references=refs)["macro_f1"]
    assert got == pytest.approx(expected_f1)
    assert MacroF1().compute(predictions=preds, references=refs)["macro_f1"] == pytest.approx(expected_f1)
    np.testing.assert_array_equal(
        confusion_matrix(refs, preds, num_classes),
        sk.confusion_matrix(refs, preds, labels=range(num_classes)),
    )


@SETTINGS
@given(labelled())
def test_classification_report_matches_sklearn(case):
    num_classes, refs, preds = case
    names = [f"class {i}" for i in range(num_classes)]
    report = classification_report(refs, preds, names)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        refs, preds, labels=range(num_classes), zero_division=0
    )
    for i, name in enumerate(names):
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision[i], recall[i], f1[i]))
        assert row["support"] == support[i]
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(refs, preds))
    assert report["total"] == len(refs)
    for average, key in (("macro", "macro avg"), ("weighted", "weighted avg")):
        expected = sk.precision_recall_fscore_support(refs, preds, average=average, zero_division=0)[:3]
        got = report[key]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(expected)


@SETTINGS
@given(num_classes=st.integers(2, 8), n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_compute_metrics_scores_the_argmax_of_each_row(num_classes, n, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, num_classes)).astype(np.float32)
    labels = rng.integers(0, num_classes, n)
    preds = [max(range(num_classes), key=lambda c: row[c]) for row in logits]  # explicit argmax per image
    got = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(labels, preds))
    assert got["macro_f1"] == pytest.approx(sk.f1_score(labels, preds, average="macro", zero_division=0))


def test_no_predictions_score_zero():
    assert Accuracy().compute(predictions=[], references=[])["accuracy"] == 0.0
    assert classification_report([], [], ["a", "b"])["accuracy"] == 0.0
