"""reliability.png: accuracy against confidence per ECE bin, from calibration.json (val, zero-shot and fine-tuned).

The bins it draws are stored as JSON in the PNG text chunk "Description", like the other plots (plots.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402

from clip_lora import artifacts  # noqa: E402
from clip_lora.calibration_card import LABELS, ordered_models  # noqa: E402


def plot_reliability(output_dir: str | Path, path: str | Path) -> Path:
    """One panel per model in calibration.json: bars of accuracy per confidence bin over the diagonal."""
    record = artifacts.read_json(Path(output_dir) / artifacts.CALIBRATION)
    models = ordered_models(record)
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4), dpi=100, squeeze=False)
    for ax, (name, m) in zip(axes[0], models, strict=True):
        filled = [b for b in m["bins"] if b["count"]]
        width = filled[0]["upper"] - filled[0]["lower"] if filled else 0
        ax.bar(
            [b["lower"] for b in filled],
            [b["accuracy"] for b in filled],
            width=width,
            align="edge",
            edgecolor="black",
            label="accuracy in bin",
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.plot(
            [b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o", color="tab:red", ms=3
        )
        title = LABELS[name].format(t=record.get("temperature") or 1.0).replace(", ", "\n", 1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy")
        ax.set_title(f"{title}, ECE {m['ece']:.4f}", fontsize=9)
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return artifacts.save_figure(fig, path, record)
