"""changes.png: thumbnails of the val images fine-tuning fixed or broke, with true / zero-shot / fine-tuned labels.

The counts in the titles are the McNemar test's b and c (clip_lora/stats.py). Every changed image is listed in the
PNG's "Description" chunk (JSON), also those beyond the thumbnails drawn (MAX_THUMBNAILS per kind).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clip_lora import artifacts  # noqa: E402
from clip_lora.changes import BROKEN, FIXED, changed_images, discordant_counts  # noqa: E402
from clip_lora.images import BadImageError, open_image  # noqa: E402

COLUMNS = 6
MAX_THUMBNAILS = (
    24  # per kind; a run near chance changes most images, and a wall of hundreds reads as nothing
)
THUMBNAIL = (96, 96)


def _thumbnail(path: Path | None):
    if path is None:
        return None
    try:
        rgb = open_image(path)  # the one bounded, EXIF-aware decode training and evaluation saw
    except BadImageError:
        return None
    rgb.thumbnail(THUMBNAIL)
    return np.asarray(rgb)


def plot_changes(output_dir: str | Path, path: str | Path) -> Path:
    """Draw changes.png for the run in output_dir; returns its path."""
    rows = changed_images(output_dir)
    b, c = discordant_counts(rows)
    sections = [
        (FIXED, c, "fixed: zero-shot wrong -> fine-tuned right (c)"),
        (BROKEN, b, "broken: zero-shot right -> fine-tuned wrong (b)"),
    ]
    grid_rows = [
        (kind, title, [r for r in rows if r.kind == kind][:MAX_THUMBNAILS], count)
        for kind, count, title in sections
    ]
    counts = [max(1, -(-len(shown) // COLUMNS)) for _, _, shown, _ in grid_rows]
    heights = [
        n if shown else 0.4 for n, (_, _, shown, _) in zip(counts, grid_rows, strict=True)
    ]  # 'none' is short
    fig = plt.figure(figsize=(COLUMNS * 1.9, 0.6 + 2.1 * sum(heights)), dpi=100)
    subfigs = fig.subfigures(len(grid_rows), 1, height_ratios=heights)
    for subfig, (kind, title, shown, count), height in zip(subfigs, grid_rows, counts, strict=True):
        more = f", showing {len(shown)}" if len(shown) < count else ""
        subfig.suptitle(f"{title}: {count} image(s){more}", fontsize=10, x=0.01, ha="left")
        axes = subfig.subplots(height, COLUMNS, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= len(shown):
                if i == 0:
                    ax.text(0, 0.5, "none", fontsize=9, transform=ax.transAxes)
                continue
            row = shown[i]
            thumb = _thumbnail(row.path)
            if thumb is not None:
                ax.imshow(thumb)
            else:
                ax.text(
                    0.5,
                    0.5,
                    "(image not on disk)",
                    ha="center",
                    va="center",
                    fontsize=6,
                    transform=ax.transAxes,
                )
            ax.set_title(
                f"{Path(row.image).name}\ntrue: {row.true}\nzero-shot: {row.zero_shot}\nfine-tuned: {row.fine_tuned}",
                fontsize=6,
                color="tab:green" if kind == FIXED else "tab:red",
            )
    description = {
        "b": b,
        "c": c,
        "images": [
            {
                "image": r.image,
                "kind": r.kind,
                "true": r.true,
                "zero_shot": r.zero_shot,
                "fine_tuned": r.fine_tuned,
            }
            for r in rows
        ],
    }
    return artifacts.save_figure(fig, path, description)
