"""The model card's calibration section, read from the run's calibration.json and temperature.json only."""

from __future__ import annotations

from pathlib import Path

from clip_lora import artifacts
from clip_lora.calibration import N_BINS

LABELS = {
    "zero_shot": "zero-shot (base model)",
    "fine_tuned": "fine-tuned, as trained (T = 1)",
    "fine_tuned_temperature": "fine-tuned, temperature-scaled (T = {t:.4f})",
}
DEFINITIONS = (
    f"**ECE** (expected calibration error, top-1, {N_BINS} equal-width bins): images are binned by their top "
    "probability; ECE is the image-weighted mean over bins of |accuracy - mean top probability| (0 = the stated "
    "confidence is the observed accuracy). **NLL**: mean -log p(true class). **Brier**: mean over images of the "
    "squared distance between the probability vector and the one-hot label (0 best, 2 worst)."
)


def calibration_section(output_dir: str | Path) -> str:
    """'## Calibration (val)' with its table and what each number means; '' for a run without calibration.json."""
    out = Path(output_dir)
    if not (out / artifacts.CALIBRATION).is_file():
        return ""
    record = artifacts.read_json(out / artifacts.CALIBRATION)
    t = record.get("temperature")
    rows = "".join(  # in LABELS' order: calibration.json's keys are stored sorted
        f"| {LABELS[name].format(t=t or 1.0)} | {m['ece']:.4f} | {m['nll']:.4f} | {m['brier']:.4f} | "
        f"{m['accuracy']:.4f} |\n"
        for name, m in ordered_models(record)
    )
    text = (
        f"## Calibration (val)\n\nWhether a probability of 0.97 means right 97% of the time, on the "
        f"{record['images']} val images.\n\n| model | ECE | NLL | Brier | accuracy |\n|---|---:|---:|---:|---:|\n"
        f"{rows}\n{DEFINITIONS}\n"
    )
    if (out / artifacts.TEMPERATURE).is_file():
        text += "\n" + temperature_text(artifacts.read_json(out / artifacts.TEMPERATURE))
    if (out / artifacts.RELIABILITY).is_file():
        text += f"\nReliability diagram: `{artifacts.RELIABILITY}`.\n"
    return text + "\n"


def ordered_models(record: dict) -> list[tuple[str, dict]]:
    return [(name, record["models"][name]) for name in LABELS if name in record["models"]]


def temperature_text(fit: dict) -> str:
    """What temperature.json holds, in words: T, where it was fitted, what it did on dev, who applies it."""
    where = f"the {fit['dev_images']} dev images only (val was not used)"
    if fit.get("fitted", True):
        found = (
            f"one scalar T = {fit['temperature']:.4f}, fitted on {where} by minimising their NLL "
            f"({fit['dev_nll_before']:.4f} -> {fit['dev_nll_after']:.4f})"
        )
    else:
        found = f"searched on {where}, but {fit['note']}"
    return (
        f"**Temperature scaling**: probabilities = softmax(logits / T); {found}. T is stored in "
        f"`{artifacts.TEMPERATURE}` beside the adapter; `clip-lora predict`, `clip-lora export` and the app apply "
        f"it (`--no_temperature` turns it off). The top-1 prediction, and so the accuracy, is the same with and "
        f"without it: only the confidences move.\n"
    )
