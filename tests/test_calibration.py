"""Calibration numbers against an independent float64 re-implementation (plain Python loops, math.fsum), on random
and on constructed logits; temperature fitting recovers a known T; dividing by T never changes the top-1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clip_lora import calibration

# ---------------------------------------------------------------- the reference: one image at a time, in Python


def ref_probs(row, temperature=1.0):
    scaled = [z / temperature for z in row]
    top = max(scaled)
    exps = [math.exp(z - top) for z in scaled]
    total = math.fsum(exps)
    return [e / total for e in exps]


def ref_metrics(logits, labels, temperature=1.0, n_bins=15):
    rows = [ref_probs(list(map(float, row)), temperature) for row in logits]
    n = len(rows)
    nll = math.fsum(-math.log(p[y]) for p, y in zip(rows, labels, strict=True)) / n
    brier = (
        math.fsum(
            math.fsum((q - (1.0 if c == y else 0.0)) ** 2 for c, q in enumerate(p))
            for p, y in zip(rows, labels, strict=True)
        )
        / n
    )
    bins = [[] for _ in range(n_bins)]
    for p, y in zip(rows, labels, strict=True):
        conf = max(p)
        pred = p.index(conf)
        k = next(k for k in range(n_bins) if conf <= (k + 1) / n_bins)  # bins (k/15, (k+1)/15]
        bins[k].append((conf, pred == y))
    ece = math.fsum(
        len(b) / n * abs(math.fsum(c for _, c in b) / len(b) - math.fsum(c for c, _ in b) / len(b))
        for b in bins
        if b
    )
    return {"ece": ece, "nll": nll, "brier": brier}


# ---------------------------------------------------------------- random logits


@pytest.mark.parametrize(
    "seed, scale, temperature", [(0, 1.0, 1.0), (1, 5.0, 1.0), (2, 20.0, 1.7), (3, 0.3, 0.4)]
)
def test_metrics_equal_the_reference_on_random_logits(seed, scale, temperature):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, scale, size=(300, 7)).astype(np.float32)
    labels = rng.integers(0, 7, size=300)
    got = calibration.summary(logits, labels, temperature)
    want = ref_metrics(logits, labels, temperature)
    for key in ("ece", "nll", "brier"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


# ---------------------------------------------------------------- constructed logits


def _logits_with_confidence(confidence: float, predicted: int, classes: int = 2) -> list[float]:
    """Logits whose softmax gives `confidence` to `predicted` and shares the rest evenly."""
    rest = (1 - confidence) / (classes - 1)
    return [math.log(confidence if c == predicted else rest) for c in range(classes)]


def test_perfectly_calibrated_construction_has_ece_zero():
    # In each of four bins, 20 images at confidence c of which exactly 20 * c are right.
    logits, labels = [], []
    for confidence in (0.6, 0.7, 0.8, 0.9):
        right = round(20 * confidence)
        for i in range(20):
            logits.append(_logits_with_confidence(confidence, predicted=0))
            labels.append(0 if i < right else 1)
    assert calibration.summary(np.array(logits), np.array(labels))["ece"] == pytest.approx(0.0, abs=1e-12)


def test_overconfident_construction_has_the_known_ece():
    # Confidence 0.95 everywhere, half right: ECE = |0.5 - 0.95| = 0.45. A second group at 0.55, all right: its bin
    # adds |1 - 0.55| = 0.45 too, each weighted by its share (30 and 10 of 40 images).
    logits = [_logits_with_confidence(0.95, 0, classes=4)] * 30 + [
        _logits_with_confidence(0.55, 2, classes=4)
    ] * 10
    labels = [0] * 15 + [1] * 15 + [2] * 10
    got = calibration.summary(np.array(logits), np.array(labels))
    assert got["ece"] == pytest.approx(30 / 40 * 0.45 + 10 / 40 * 0.45, abs=1e-12)
    assert got["accuracy"] == pytest.approx(25 / 40)
    # NLL and Brier of the construction, by hand.
    rest95, rest55 = 0.05 / 3, 0.45 / 3
    nll = (15 * -math.log(0.95) + 15 * -math.log(rest95) + 10 * -math.log(0.55)) / 40
    brier_right95 = (1 - 0.95) ** 2 + 3 * rest95**2
    brier_wrong95 = 0.95**2 + (1 - rest95) ** 2 + 2 * rest95**2
    brier_right55 = (1 - 0.55) ** 2 + 3 * rest55**2
    assert got["nll"] == pytest.approx(nll, rel=1e-12)
    assert got["brier"] == pytest.approx((15 * brier_right95 + 15 * brier_wrong95 + 10 * brier_right55) / 40)


def test_reliability_bins_are_equal_width_and_right_closed():
    bins = calibration.reliability_bins(np.array([[1 / 15 + 1e-9, 1 - 1 / 15 - 1e-9], [1.0, 0.0]]), [0, 0])
    assert len(bins) == 15 and bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0
    assert [b["count"] for b in bins] == [0] * 13 + [1, 1]  # 14/15 - 1e-9 in bin 13, 1.0 in the last
    assert bins[14]["accuracy"] == 1.0 and bins[13]["accuracy"] == 0.0


# ---------------------------------------------------------------- temperature scaling


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fitting_recovers_a_known_temperature(true_t):
    # Labels drawn from softmax(z / T): the model z is miscalibrated by exactly T, which the fit must find.
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 4.0, size=(20000, 10))
    probs = np.exp(calibration.log_probabilities(logits, true_t))
    labels = (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)
    fitted = calibration.fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.02)
    # It is the NLL minimum: a step either way is worse.
    best = calibration.nll(logits, labels, fitted)
    assert best <= calibration.nll(logits, labels, fitted * 1.01)
    assert best <= calibration.nll(logits, labels, fitted / 1.01)


def test_temperature_keeps_the_top1_prediction():
    # Argmax is invariant under dividing by T > 0: every prediction is the same with T applied, at any T.
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, size=(500, 10))
    for t in (0.05, 0.7, 1.0, 3.0, 90.0):
        probs = np.exp(calibration.log_probabilities(logits, t))
        assert (probs.argmax(axis=1) == logits.argmax(axis=1)).all()


def test_a_separable_dev_set_stops_at_the_bound_and_keeps_t_1(tmp_path):
    logits = np.array([[50.0, 0.0], [0.0, 50.0]])
    fitted = calibration.fit_temperature(logits, [0, 1])
    assert fitted == pytest.approx(math.exp(calibration.LOG_T_BOUNDS[0]), rel=1e-6)
    # Such a "fit" is no evidence for sharpening: temperature.json keeps T = 1 and says why.
    assert calibration.at_bound(fitted)
    record = calibration.write_temperature(tmp_path, fitted, logits, [0, 1])
    assert record["temperature"] == 1.0 and record["fitted"] is False and "no minimum" in record["note"]


def test_temperature_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 5, size=(50, 3))
    labels = np.where(rng.random(50) < 0.7, logits.argmax(axis=1), rng.integers(0, 3, 50))  # 70%+ right
    t = calibration.fit_temperature(logits, labels)
    assert not calibration.at_bound(t)
    record = calibration.write_temperature(tmp_path, t, logits, labels)
    assert calibration.read_temperature(tmp_path) == t
    assert record["fitted_on"] == "dev" and record["dev_nll_after"] <= record["dev_nll_before"]
    assert record["dev_nll_before"] == pytest.approx(ref_metrics(logits, labels)["nll"], rel=1e-9)
    assert record["dev_nll_after"] == pytest.approx(ref_metrics(logits, labels, t)["nll"], rel=1e-9)
    assert calibration.read_temperature(tmp_path / "nowhere") is None
