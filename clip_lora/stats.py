"""Paired significance for two classifiers on the same images: the exact McNemar test.

    result = mcnemar(labels, zero_shot_predictions, finetuned_predictions)
    result["b"], result["c"], result["p_value"]   # baseline-only correct, model-only correct, two-sided exact p

Only the discordant images carry information: b = images the baseline gets right and the model gets wrong, c = the
reverse. Under H0 (equal accuracy) each discordant image is a fair coin, so b ~ Binomial(b + c, 1/2) and the two-sided
exact p-value is min(1, 2 * P[X <= min(b, c)]). Computed with integer binomial coefficients (no scipy), so it is exact
for any n. This module imports no other project module.
"""

from __future__ import annotations

import math

import numpy as np


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts; mcnemar_exact_p(1, 9) == 0.021484375."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0  # no discordant image: no evidence either way
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # int / int: Python rounds the exact ratio once, even for 2**4000


def mcnemar(labels, baseline_predictions, model_predictions) -> dict:
    """Counts and exact p-value for `model` vs `baseline` on the same images (same order)."""
    labels, base, model = (
        np.asarray(x, dtype=np.int64).reshape(-1) for x in (labels, baseline_predictions, model_predictions)
    )
    if not len(labels) == len(base) == len(model):
        raise ValueError(
            f"{len(labels)} labels, {len(base)} and {len(model)} predictions: not the same images"
        )
    base_right, model_right = base == labels, model == labels
    b = int((base_right & ~model_right).sum())
    c = int((~base_right & model_right).sum())
    return {
        "n": int(len(labels)),
        "b": b,  # baseline right, model wrong
        "c": c,  # baseline wrong, model right
        "baseline_accuracy": float(base_right.mean()) if len(labels) else 0.0,
        "model_accuracy": float(model_right.mean()) if len(labels) else 0.0,
        "p_value": mcnemar_exact_p(b, c),
    }


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("mean_std of no values")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
