"""What the probabilities mean: ECE, NLL and Brier score of (N, C) logits, and temperature scaling fitted on dev.

    summary(logits, labels)                       # {"ece", "nll", "brier", "accuracy"} (float64 throughout)
    T = fit_temperature(dev_logits, dev_labels)   # one scalar, minimising dev NLL of softmax(logits / T)
    write_temperature(output_dir, T, dev_logits, dev_labels)   # temperature.json, next to the adapter files
    read_temperature(adapter_or_export)           # T, or None where the folder carries none

Definitions (what the card states):
- ECE (top-1, 15 equal-width bins): each image's confidence is its top probability; images fall in the bins
  (0, 1/15], (1/15, 2/15], ... (14/15, 1]; ECE = sum over bins of (images in bin / N) * |accuracy - mean confidence|.
- NLL: the mean over images of -log p(true class).
- Brier score: the mean over images of sum over classes of (p_c - 1[c = true class])^2 (0 best, 2 worst).
Probabilities are softmax(logits / T); T = 1 is the model as it is. Dividing by T > 0 keeps every row's argmax.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from clip_lora import artifacts
from clip_lora.errors import ModelError

N_BINS = 15
TEMPERATURE = artifacts.TEMPERATURE  # read by predict, export and the ONNX export: keep the name and the keys
CALIBRATION = artifacts.CALIBRATION
LOG_T_BOUNDS = (math.log(1e-2), math.log(1e2))  # T between 0.01 and 100
METHOD = "golden-section search of dev NLL over log T in [log 0.01, log 100], float64"


def _as_arrays(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits of shape {logits.shape} do not match {len(labels)} labels")
    return logits, labels


def log_probabilities(logits, temperature: float = 1.0) -> np.ndarray:
    """log softmax(logits / T), float64, stable (the row maximum subtracted)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def nll(logits, labels, temperature: float = 1.0) -> float:
    logits, labels = _as_arrays(logits, labels)
    if not len(labels):
        return 0.0
    return float(-log_probabilities(logits, temperature)[np.arange(len(labels)), labels].mean())


def brier(probs, labels) -> float:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not len(labels):
        return 0.0
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def reliability_bins(probs, labels, n_bins: int = N_BINS) -> list[dict]:
    """Per equal-width confidence bin (lower, upper]: its image count, accuracy and mean confidence."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels) if len(probs) else np.zeros(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin k holds edges[k] < confidence <= edges[k+1]; searchsorted(side="left") finds exactly that k + 1.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins = []
    for k in range(n_bins):
        members = index == k
        count = int(members.sum())
        bins.append(
            {
                "lower": float(edges[k]),
                "upper": float(edges[k + 1]),
                "count": count,
                "accuracy": float(correct[members].mean()) if count else None,
                "confidence": float(confidence[members].mean()) if count else None,
            }
        )
    return bins


def ece(probs, labels, n_bins: int = N_BINS) -> float:
    total = len(np.asarray(labels).reshape(-1))
    if not total:
        return 0.0
    return float(
        sum(
            b["count"] / total * abs(b["accuracy"] - b["confidence"])
            for b in reliability_bins(probs, labels, n_bins)
            if b["count"]
        )
    )


def summary(logits, labels, temperature: float = 1.0) -> dict:
    """{"ece", "nll", "brier", "accuracy"} of softmax(logits / T) against the labels."""
    logits, labels = _as_arrays(logits, labels)
    probs = np.exp(log_probabilities(logits, temperature)) if len(labels) else logits
    return {
        "ece": ece(probs, labels),
        "nll": nll(logits, labels, temperature),
        "brier": brier(probs, labels),
        "accuracy": float((probs.argmax(axis=1) == labels).mean()) if len(labels) else 0.0,
    }


def fit_temperature(logits, labels, iterations: int = 200) -> float:
    """The T minimising the NLL of softmax(logits / T): a golden-section search over log T in float64.

    NLL is convex in 1/T (a log-sum-exp of lines minus a line), so it has one minimum along log T as well and a
    bracketing search finds it without a starting guess or a step size; 200 shrinks of the bracket by 0.618 leave
    it far below float64's resolution. A minimum beyond the bounds (e.g. dev all right by a wide margin) stops at
    the bound rather than running T to 0."""
    logits, labels = _as_arrays(logits, labels)
    if not len(labels):
        return 1.0
    ratio = (math.sqrt(5) - 1) / 2
    lo, hi = LOG_T_BOUNDS
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((lo + hi) / 2))


def at_bound(temperature: float) -> bool:
    """True where the search ended at a bound of LOG_T_BOUNDS: the NLL has no minimum inside them."""
    return not LOG_T_BOUNDS[0] + 1e-6 < math.log(temperature) < LOG_T_BOUNDS[1] - 1e-6


def write_temperature(output_dir: str | Path, fitted: float, dev_logits, dev_labels) -> dict:
    """temperature.json: T, where it was fitted and what it did to the dev NLL and ECE (main process only).

    A dev split with no misclassified image has no NLL minimum (it falls on as T -> 0, every probability -> 1):
    then T stays 1 and the file says why; T = 0.01 would claim a certainty that 20 or 900 images cannot show."""
    temperature = 1.0 if at_bound(fitted) else fitted
    before, after = summary(dev_logits, dev_labels), summary(dev_logits, dev_labels, temperature)
    record = {
        "temperature": temperature,
        "fitted_on": "dev",
        "fitted": not at_bound(fitted),
        "search_result": fitted,
        "dev_images": len(np.asarray(dev_labels).reshape(-1)),
        "dev_accuracy": before["accuracy"],
        "dev_nll_before": before["nll"],
        "dev_nll_after": after["nll"],
        "dev_ece_before": before["ece"],
        "dev_ece_after": after["ece"],
        "method": METHOD,
        "applies_as": "probabilities = softmax(logits / temperature)",
    }
    if at_bound(fitted):
        record["note"] = (
            f"the dev NLL has no minimum for T in [0.01, 100] (search ended at {fitted:.4g}; dev accuracy "
            f"{before['accuracy']:.4f}): T = 1 kept"
        )
    artifacts.write_json(Path(output_dir) / TEMPERATURE, record)
    return record


def temperature_file(model_dir: str | Path | None) -> Path | None:
    """temperature.json of a run's output_dir, an export folder or a pushed adapter's hub id (from the cache when
    offline), or None where there is none (a base model, a run made before temperature scaling)."""
    if not model_dir:
        return None
    path = Path(model_dir) / TEMPERATURE
    if path.is_file():
        return path
    if Path(model_dir).exists() or str(model_dir).count("/") != 1:
        return None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(str(model_dir), TEMPERATURE))
    except Exception:  # noqa: BLE001 - a repo without one: T = 1
        return None


def read_temperature(model_dir: str | Path | None) -> float | None:
    """The T stored with an adapter or an export (temperature.json), or None where there is none. A file without a
    positive finite number under "temperature" is one `error:` line (ModelError), never a wrong probability."""
    path = temperature_file(model_dir)
    if path is None:
        return None
    try:
        value = artifacts.read_json(path)["temperature"]
        temperature = float(value)
    except (ValueError, KeyError, TypeError) as err:
        raise ModelError(
            f"{path} has no number under 'temperature' ({err}); refit the temperature or delete the file."
        ) from None
    if isinstance(value, bool) or not math.isfinite(temperature) or temperature <= 0:
        raise ModelError(
            f"{path}: temperature {value!r} must be a positive number; refit it or delete the file."
        )
    return temperature


def _entry(logits, labels, temperature: float = 1.0) -> dict:
    probs = np.exp(log_probabilities(logits, temperature))
    return {**summary(logits, labels, temperature), "bins": reliability_bins(probs, labels)}


def val_record(zero_shot, final, temperature: float | None, same_model: bool) -> dict:
    """calibration.json: ECE / NLL / Brier and the reliability bins on val, zero-shot, fine-tuned (T = 1) and
    fine-tuned with the dev-fitted T. `zero_shot` and `final` are the evaluations' outputs (logits gathered over
    every process, in dataset order), so N processes write what one writes."""
    models = {"zero_shot": _entry(zero_shot.predictions, zero_shot.label_ids)}
    if not same_model:
        models["fine_tuned"] = _entry(final.predictions, final.label_ids)
    if temperature is not None:
        models["fine_tuned_temperature"] = _entry(final.predictions, final.label_ids, temperature)
    return {
        "split": "val",
        "images": len(np.asarray(final.label_ids).reshape(-1)),
        "n_bins": N_BINS,
        "temperature": temperature,
        "models": models,
    }


RESULT_PREFIX = {"zero_shot": "zero_shot", "fine_tuned": "eval", "fine_tuned_temperature": "eval_temperature"}


def result_keys(record: dict) -> dict:
    """The calibration numbers all_results.json carries: zero_shot_ece, eval_ece, eval_temperature_ece, ..."""
    keys = {
        f"{RESULT_PREFIX[name]}_{metric}": values[metric]
        for name, values in record["models"].items()
        for metric in ("ece", "nll", "brier")
    }
    if record["temperature"] is not None:
        keys["temperature"] = record["temperature"]
    return keys


def fit_and_store(dev, output_dir: str | Path, write: bool) -> float | None:
    """Fit T on the dev evaluation's logits and (main process) write temperature.json; returns T, or None where
    the fit found no minimum (T = 1 stored). The logits came back gathered over every process in dataset order, so
    every process fits the T one process would."""
    fitted = fit_temperature(dev.predictions, dev.label_ids)
    if write:
        write_temperature(output_dir, fitted, dev.predictions, dev.label_ids)
    return None if at_bound(fitted) else fitted


def store_val(output_dir: str | Path, zero_shot, final, temperature: float | None) -> dict:
    """Write calibration.json (main process); returns the keys all_results.json gets."""
    record = val_record(zero_shot, final, temperature, same_model=final is zero_shot)
    artifacts.write_json(Path(output_dir) / CALIBRATION, record)
    return result_keys(record)
