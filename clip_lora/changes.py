"""The val images whose prediction fine-tuning changed: where the result of a run near 99% actually lies.

    rows = changed_images("runs/demo")     # fixed first, then broken, each in val order
    rows[0].image, rows[0].true, rows[0].zero_shot, rows[0].fine_tuned, rows[0].kind, rows[0].path
    rows[0].zero_shot_p_true, rows[0].caption()
    b, c = discordant_counts(rows)        # the McNemar test's counts (clip_lora/stats.py)

Read from zero_shot_predictions.csv and predictions.csv of one run (same val images). `fixed`: zero-shot wrong and
fine-tuned right (McNemar's c); `broken`: zero-shot right and fine-tuned wrong (b). An image both models get wrong,
even with different wrong labels, changes no correctness and is not listed, exactly as in the McNemar test.
`path` is the image file when the run's images are on this machine (see image_root), else None. Used by changes.png
(clip_lora/changes_plot.py) and the `clip-lora app` page (clip_lora/app_run.py).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from clip_lora import artifacts
from clip_lora.errors import ModelError
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

    @property
    def fixed(self) -> bool:
        return self.kind == FIXED

    @property
    def zero_shot_p_true(self) -> float:
        return self.zero_shot_probs[self.true]

    @property
    def fine_tuned_p_true(self) -> float:
        return self.fine_tuned_probs[self.true]

    def caption_lines(self) -> tuple[str, str, str]:
        """The true class, then each model's answer with its probability: one line each, as the app shows them."""
        return (
            f"true: {self.true}",
            f"zero-shot: {self.zero_shot} ({self.zero_shot_probs[self.zero_shot]:.2f})",
            f"fine-tuned: {self.fine_tuned} ({self.fine_tuned_probs[self.fine_tuned]:.2f})",
        )

    def caption(self) -> str:
        return " | ".join(self.caption_lines())


def read_rows(path: str | Path) -> dict[str, tuple[str, str, dict[str, float]]]:
    """image id -> (true label, predicted label, {class: probability}) from a predictions CSV, in file order."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        classes = next(reader)[3:]
        return {
            row[0]: (row[1], row[2], dict(zip(classes, map(float, row[3:]), strict=True))) for row in reader
        }


def image_root(
    run_dir: str | Path, run_config: dict, image_id: str, data_dir: str | None = None
) -> Path | None:
    """The folder the run's image ids are relative to (the one holding image_id), or None (Hub data, or not here).

    Ids are relative to the dataset root: the run's recorded data source root, --dataset_name when it is a folder,
    else --data_dir or the extracted archive folder inside it. A relative folder is tried from here and from each
    folder above the run's (the demo records data_dir relative to where it ran). data_dir replaces them all.
    """
    recorded = data_source(run_config).get("root") if run_config else None  # no config: nothing to go by
    given = [data_dir] if data_dir else [recorded, run_config.get("dataset_name"), run_config.get("data_dir")]
    bases = [Path.cwd(), *Path(run_dir).resolve().parents]
    for entry in filter(None, given):
        path = Path(entry).expanduser()
        for folder in [path] if path.is_absolute() else [base / path for base in bases]:
            for root in [folder, *(sorted(folder.iterdir()) if folder.is_dir() else [])]:
                if (root / image_id).is_file():
                    return root
    return None


def changed_images(output_dir: str | Path, data_dir: str | None = None) -> list[ChangedImage]:
    """Every val image whose correctness differs between zero-shot and the fine-tuned model (fixed, then broken).

    data_dir: where the run's images are, when not where run_config.json says (see image_root).
    """
    out = Path(output_dir)
    zero_shot = read_rows(out / artifacts.ZERO_SHOT_PREDICTIONS)
    fine_tuned = read_rows(out / artifacts.PREDICTIONS)
    if zero_shot.keys() != fine_tuned.keys():
        raise ModelError(
            f"{out}: {artifacts.ZERO_SHOT_PREDICTIONS} and {artifacts.PREDICTIONS} hold other images; "
            "rerun the training."
        )
    first = next(iter(fine_tuned), None)
    root = image_root(out, artifacts.read_run_config(out), first, data_dir) if first else None
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
