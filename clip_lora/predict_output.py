"""What `clip-lora predict` does around the model, shared by its torch and onnx paths and free of torch: find the
image files, decode them (the training decode), rank the classes, write the CSV / JSON / table.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from clip_lora import artifacts, progress
from clip_lora.artifacts import escape_path
from clip_lora.errors import PredictError
from clip_lora.images import IMAGE_EXTENSIONS, BadImageError, open_image

Row = tuple[str, list[tuple[str, float]]]


def find_images(inputs: list[str]) -> list[Path]:
    """Files as given, plus every image file under the given folders (sorted), each once."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        elif item.exists():
            found.append(item)
        else:
            raise PredictError(f"{item} does not exist; pass image files or folders.")
    return list(dict.fromkeys(found))


def read_image(path: Path) -> Image.Image:
    """The same decode as training and evaluation (EXIF orientation, size bounds); BadImageError when unusable."""
    return open_image(path)


def read_images(
    paths: list[Path], inputs: list[str]
) -> tuple[list[Image.Image], list[str], list[tuple[str, str]]]:
    """(RGB images, their names, (name, reason) of the files skipped); one stderr line per skipped file."""
    images, names, skipped = [], [], []
    for path in progress.bar(paths, desc="Reading images"):
        try:
            images.append(read_image(path))
            names.append(str(path))
        except BadImageError as err:
            skipped.append((str(path), str(err)))
            print(f"skipped {escape_path(path)}: {err}", file=sys.stderr)
    if not images:
        raise PredictError(f"no readable images among {len(paths)} file(s) in {' '.join(inputs)}.")
    return images, names, skipped


def top_k(probs: np.ndarray, class_names: list[str], k: int) -> list[list[tuple[str, float]]]:
    """(N, C) probabilities -> per image the k most probable (class, probability), highest first."""
    indices = np.argsort(-probs, axis=1, kind="stable")[:, : min(k, len(class_names))]
    return [
        [(class_names[i], float(row[i])) for i in ix]
        for row, ix in zip(probs.tolist(), indices.tolist(), strict=True)
    ]


def write_output(
    path: Path, rows: list[tuple[str, list[tuple[str, float]]]], skipped: list[tuple[str, str]]
) -> None:
    if path.suffix == ".json":
        data = {
            "predictions": [
                {"image": image, "top_k": [{"label": lab, "score": s} for lab, s in top]}
                for image, top in rows
            ],
            "skipped": [{"image": image, "error": error} for image, error in skipped],
        }
        artifacts.atomic_write_text(path, json.dumps(data, indent=2) + "\n")
        return
    k = max((len(top) for _, top in rows), default=0)
    with artifacts.atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *(f"{kind}_{r}" for r in range(1, k + 1) for kind in ("label", "score"))])
        for image, top in rows:
            writer.writerow([image, *(x for lab, s in top for x in (lab, f"{s:.6f}"))])


def format_table(rows: list[tuple[str, list[tuple[str, float]]]]) -> str:
    width = max([len("image"), *(len(image) for image, _ in rows)])
    lines = [f"{'image':<{width}}  top-k (probability)"]
    lines += [f"{image:<{width}}  " + "  ".join(f"{lab} {s:.4f}" for lab, s in top) for image, top in rows]
    return "\n".join(lines)


def report(args, names: list[str], probs: np.ndarray, class_names: list[str], skipped) -> list[Row]:
    """The top-k rows, written to --output or printed as a table; returns them."""
    rows = list(zip(names, top_k(probs, class_names, args.top_k), strict=True))
    if args.output:
        write_output(Path(args.output), rows, skipped)
        print(f"{len(rows)} predictions -> {args.output}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    else:
        print(format_table(rows))
    return rows
