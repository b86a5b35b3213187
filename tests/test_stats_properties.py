"""stats: the exact McNemar p-value against scipy's exact binomial test, its symmetry in b and c, the counts against
an explicit loop, and mean_std against the statistics module (hypothesis)."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from clip_lora.stats import mcnemar, mcnemar_exact_p, mean_std

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@SETTINGS
@given(b=st.integers(0, 60), c=st.integers(0, 60))
def test_exact_p_is_scipys_two_sided_binomial_test_and_symmetric(b, c):
    p = mcnemar_exact_p(b, c)
    assert p == mcnemar_exact_p(c, b)
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-9)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=30))
def test_counts_match_an_explicit_loop(rows):
    labels, base, model = (list(column) for column in zip(*rows, strict=True))
    b = sum(1 for y, p, q in rows if p == y and q != y)
    c = sum(1 for y, p, q in rows if p != y and q == y)
    result = mcnemar(labels, base, model)
    assert (result["n"], result["b"], result["c"]) == (len(rows), b, c)
    assert result["baseline_accuracy"] == pytest.approx(sum(p == y for y, p, _ in rows) / len(rows))
    assert result["model_accuracy"] == pytest.approx(sum(q == y for y, _, q in rows) / len(rows))
    assert result["p_value"] == mcnemar_exact_p(b, c)


@pytest.mark.parametrize(("b", "c"), [(-1, 3), (3, -1)])
def test_a_negative_count_is_refused(b, c):
    with pytest.raises(ValueError, match="discordant"):
        mcnemar_exact_p(b, c)


def test_no_images_give_zero_accuracies_and_no_evidence():
    expected = {"n": 0, "b": 0, "c": 0, "baseline_accuracy": 0.0, "model_accuracy": 0.0, "p_value": 1.0}
    assert mcnemar([], [], []) == expected


@SETTINGS
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=12))
@example([0.25])  # one seed: no spread
@example([1.0, 3.0])  # two seeds, the smallest sample with a standard deviation
def test_mean_std_is_the_sample_standard_deviation(values):
    mean, std = mean_std(values)
    assert mean == pytest.approx(statistics.fmean(values), abs=1e-9)
    assert std == pytest.approx(statistics.stdev(values) if len(values) > 1 else 0.0, abs=1e-6)
