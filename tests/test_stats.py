"""stats.py: the exact McNemar test on hand-built prediction pairs with known counts and p-values."""

from __future__ import annotations

import math

import pytest

from clip_lora.stats import mcnemar, mcnemar_exact_p, mean_std


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (1, 9, 0.021484375),  # 2 * (1 + 10) / 1024
        (9, 1, 0.021484375),  # symmetric
        (0, 5, 0.0625),  # 2 / 32
        (3, 3, 1.0),  # capped at 1
        (0, 0, 1.0),  # no discordant image
        (2, 10, 2 * (1 + 12 + 66) / 4096),
    ],
)
def test_exact_p_values(b, c, p):
    assert mcnemar_exact_p(b, c) == pytest.approx(p, rel=1e-12)


def test_large_n_is_exact_and_finite():
    # 13 vs 0 discordant images out of 3,925 (the seed's +0.34 pp if every change were a fix): p = 2 / 2**13
    assert mcnemar_exact_p(0, 13) == pytest.approx(2 / 2**13)
    p = mcnemar_exact_p(1000, 1100)
    assert 0 < p < 0.05 and math.isfinite(p)


def test_counts_from_hand_built_predictions():
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    base = [0, 1, 2, 1, 2, 0, 1, 2, 0, 1, 2, 0]  # right on the first 3 only
    model = [0, 1, 0, 0, 1, 2, 0, 1, 2, 0, 1, 0]  # wrong on image 2 (base right) and 11; fixes 3..10
    result = mcnemar(labels, base, model)
    assert (result["b"], result["c"], result["n"]) == (1, 8, 12)
    assert result["p_value"] == pytest.approx(2 * (1 + 9) / 2**9)
    assert result["baseline_accuracy"] == pytest.approx(3 / 12)
    assert result["model_accuracy"] == pytest.approx(10 / 12)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="not the same images"):
        mcnemar([0, 1], [0, 1], [0])


def test_mean_std():
    assert mean_std([0.9, 1.0, 0.95]) == pytest.approx((0.95, 0.05))
    assert mean_std([0.5]) == (0.5, 0.0)
