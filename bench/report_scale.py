"""Time of the report step (per-class report + plots) at 10, 100 and 1,000 classes -> bench/report_scale.json.

    .venv/bin/python bench/report_scale.py

A synthetic finished run (one val image per class, as the issue's 1,000-class run; 30% of them wrong) so the figures
measure the report step only, not training. Goal (issue #28): the 1,000-class step under 30 s on this machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # metrics.py lives at the repository root

from clip_lora import artifacts, plots  # noqa: E402
from metrics import classification_report, save_report  # noqa: E402


def report_step_seconds(n_classes: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    names = [f"class {i}" for i in range(n_classes)]
    labels = np.arange(n_classes)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for csv_name in (artifacts.PREDICTIONS, artifacts.ZERO_SHOT_PREDICTIONS):
            predicted = np.where(rng.random(n_classes) < 0.3, rng.integers(0, n_classes, n_classes), labels)
            logits = np.eye(n_classes, dtype=np.float32)[predicted] * 5.0
            artifacts.write_predictions(out / csv_name, [f"{i}.jpg" for i in labels], labels, logits, names)
        start = time.perf_counter()
        save_report(classification_report(labels, predicted, names), out, split="val", model="bench")
        plots.save_plots(out)
        return time.perf_counter() - start


if __name__ == "__main__":
    figures = {f"report_step_s_{n}_classes": round(report_step_seconds(n), 2) for n in (10, 100, 1000)}
    Path(__file__).with_name("report_scale.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
