"""The val images whose prediction fine-tuning changed: where the result of a run near 99% actually lies.

    rows = changed_images("runs/demo")     # fixed first, then broken, each in val order
    rows[0].image, rows[0].true, rows[0].zero_shot, rows[0].fine_tuned, rows[0].kind, rows[0].path
    b, c = discordant_counts(rows)        # the McNemar test's counts (clip_lora/stats.py)

Read from zero_shot_predictions.csv and predictions.csv of one run (same val images). `fixed`: zero-shot wrong and
fine-tuned right (McNemar's c); `broken`: zero-shot right and fine-tuned wrong (b). An image both models get wrong,
even with different wrong labels, changes no correctness and is not listed, exactly as in the McNemar test.
`path` is the image file when the run's images are on disk (a local folder or the fast.ai archive), else None.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from clip_lora import artifacts
from clip_lora.provenance import data_source

FIXED, BROKEN = "fixed", "broken"


@dataclass(frozen=True)
class ChangedImage:
    image: str  # the image id of predictions.csv
    path: Path | None
    true: str
    zero_shot: str
    fine_tuned: str
    kind: str  # FIXED or BROKEN
    zero_shot_probs: dict[str, float]  # class name -> probability, every class
    fine_tuned_probs: dict[str, float]


def read_rows(path: str | Path) -> dict[str, tuple[str, str, dict[str, float]]]:
    """image id -> (true label, predicted label, {class: probability}) from a predictions CSV, in file order."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        classes = next(reader)[3:]
        return {
            row[0]: (row[1], row[2], dict(zip(classes, map(float, row[3:]), strict=True))) for row in reader
        }


def image_root(output_dir: str | Path) -> Path | None:
    """The folder the run's image ids are relative to, when it is on this machine."""
    config_path = Path(output_dir) / artifacts.RUN_CONFIG
    if not config_path.is_file():
        return None
    root = data_source(artifacts.read_json(config_path)).get("root")
    return Path(root) if root and Path(root).is_dir() else None


def changed_images(output_dir: str | Path) -> list[ChangedImage]:
    """Every val image whose correctness differs between zero-shot and the fine-tuned model (fixed, then broken)."""
    out = Path(output_dir)
    zero_shot = read_rows(out / artifacts.ZERO_SHOT_PREDICTIONS)
    fine_tuned = read_rows(out / artifacts.PREDICTIONS)
    if zero_shot.keys() != fine_tuned.keys():
        raise ValueError(
            f"{out}: {artifacts.ZERO_SHOT_PREDICTIONS} and {artifacts.PREDICTIONS} hold other images"
        )
    root = image_root(out)
    rows = []
    for image, (true, zs_pred, zs_probs) in zero_shot.items():
        _, ft_pred, ft_probs = fine_tuned[image]
        if (zs_pred == true) == (ft_pred == true):
            continue
        path = root / image if root is not None and (root / image).is_file() else None
        kind = FIXED if ft_pred == true else BROKEN
        rows.append(ChangedImage(image, path, true, zs_pred, ft_pred, kind, zs_probs, ft_probs))
    return [r for r in rows if r.kind == FIXED] + [r for r in rows if r.kind == BROKEN]


def discordant_counts(rows: list[ChangedImage]) -> tuple[int, int]:
    """(b, c) as in stats.mcnemar: b = broken (zero-shot right only), c = fixed (fine-tuned right only)."""
    return sum(r.kind == BROKEN for r in rows), sum(r.kind == FIXED for r in rows)
