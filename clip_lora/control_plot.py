"""wise_ft_control.png: task (val) accuracy against control accuracy, one point per WiSE-FT alpha.

The trade-off a user picks an alpha from: how much of the task's gain each alpha keeps against how much of the
zero-shot model's accuracy on other classes it gives up. Read from wise_ft.json and control.json; the points it draws
are stored as JSON in the PNG text chunk "Description", like the other plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402

from clip_lora import artifacts  # noqa: E402


def tradeoff_points(output_dir: str | Path) -> list[dict]:
    """[{alpha, val_accuracy, control_accuracy}] for the alphas both files hold, in wise_ft.json's order."""
    out = Path(output_dir)
    wise = artifacts.read_json(out / artifacts.WISE_FT_JSON)["results"]["val"]
    control = {
        e["alpha"]: e["accuracy"] for e in artifacts.read_json(out / artifacts.CONTROL_JSON)["wise_ft"]
    }
    return [
        {"alpha": e["alpha"], "val_accuracy": e["accuracy"], "control_accuracy": control[e["alpha"]]}
        for e in wise
        if e["alpha"] in control
    ]


def plot_tradeoff(output_dir: str | Path, path: str | Path) -> Path:
    points = tradeoff_points(output_dir)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot([p["control_accuracy"] for p in points], [p["val_accuracy"] for p in points], marker="o")
    for p in points:
        ax.annotate(f"alpha {p['alpha']:g}", (p["control_accuracy"], p["val_accuracy"]), fontsize=7)
    ax.set(
        xlabel="control accuracy (classes never trained on)",
        ylabel="task accuracy (val)",
        title="WiSE-FT: task vs control, per alpha",
        xlim=(-0.05, 1.05),
        ylim=(-0.05, 1.05),
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return artifacts.save_figure(fig, path, points)
