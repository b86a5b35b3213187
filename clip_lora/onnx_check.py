"""The ONNX export checks itself: onnx/export_check.json, summarised in the export's README.md.

On the run's val images (the first CHECK_IMAGES rows of its predictions.csv, found where run_config.json says the
data is), preprocessed by the same numpy code `clip-lora predict` serves with (clip_lora/pixels.py):
- fp32 onnx probabilities vs the merged torch model's (the same graph in torch): max abs difference;
- int8 vs fp32 top-1 agreement, and the images where they disagree; above INT8_WARN_SHARE the export is still
  written, with a warning line naming the share;
- fp32 top-1 vs the run's own predictions.csv.
Without the run's images (a Hub adapter, data moved) the check runs on random pixels and says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from clip_lora import artifacts
from clip_lora.changes import image_root
from clip_lora.images import BadImageError, open_image
from clip_lora.onnx_export import FP32_FILE, INPUT_NAME, INT8_FILE, ONNX_DIR
from clip_lora.onnx_predict import inference_session
from clip_lora.pixels import ClipPixels

CHECK_FILE = "export_check.json"
CHECK_IMAGES = 100  # the demo's whole val set; a sample of a larger one (each image runs three times on CPU)
RANDOM_IMAGES = 8
INT8_WARN_SHARE = 0.05  # int8 top-1 may differ from fp32 on at most this share before the export warns
BATCH = 16


def run_images(adapter_dir: str | Path, limit: int = CHECK_IMAGES) -> tuple[list[str], list, list[str]]:
    """(image ids, RGB images, their predictions.csv top-1) of the run's val set; empty lists when not here."""
    path = Path(adapter_dir) / artifacts.PREDICTIONS
    if not path.is_file():
        return [], [], []
    ids, _, predicted, class_names = artifacts.read_prediction_table(path)
    if not ids:
        return [], [], []
    root = image_root(adapter_dir, artifacts.read_run_config(adapter_dir), ids[0])
    if root is None:
        return [], [], []
    found = [], [], []
    for image_id, pred in zip(ids[:limit], predicted[:limit], strict=True):
        try:
            image = open_image(root / image_id)
        except (BadImageError, OSError):
            continue  # a val image deleted since the run: the check uses the others
        for column, value in zip(found, (image_id, image, class_names[int(pred)]), strict=True):
            column.append(value)
    return found


def _onnx_probs(path: Path, pixels: np.ndarray) -> np.ndarray:
    session = inference_session(path)  # as predict serves it
    return np.concatenate(
        [session.run(None, {INPUT_NAME: pixels[i : i + BATCH]})[0] for i in range(0, len(pixels), BATCH)]
    )


@torch.no_grad()
def _torch_probs(graph, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [graph(torch.from_numpy(pixels[i : i + BATCH])).numpy() for i in range(0, len(pixels), BATCH)]
    )


def check_export(graph, out: Path, adapter_dir: str | Path, class_names: list[str]) -> dict:
    """Run the checks, write onnx/export_check.json, return its content."""
    ids, images, run_top1 = run_images(adapter_dir)
    to_pixels = ClipPixels.from_pretrained(out)
    if images:
        pixels, source = to_pixels(images), f"the run's val images ({len(images)}, from predictions.csv)"
    else:
        size = (RANDOM_IMAGES, 3, to_pixels.crop_height, to_pixels.crop_width)
        pixels = np.random.default_rng(0).standard_normal(size).astype(np.float32)
        ids, source = (
            [f"random-{i}" for i in range(RANDOM_IMAGES)],
            "random pixels (the run's images not found)",
        )
    reference = _torch_probs(graph, pixels)
    fp32 = _onnx_probs(out / ONNX_DIR / FP32_FILE, pixels)
    int8 = _onnx_probs(out / ONNX_DIR / INT8_FILE, pixels)
    top_fp32, top_int8 = fp32.argmax(axis=1), int8.argmax(axis=1)
    disagree = [
        {"image": image_id, "fp32": class_names[a], "int8": class_names[b]}
        for image_id, a, b in zip(ids, top_fp32.tolist(), top_int8.tolist(), strict=True)
        if a != b
    ]
    result = {
        "images": source,
        "num_images": len(ids),
        "fp32_vs_torch_max_abs_diff": float(np.abs(fp32 - reference).max()),
        "int8_vs_fp32_max_abs_diff": float(np.abs(int8 - fp32).max()),
        "int8_vs_fp32_top1_agreement": 1.0 - len(disagree) / len(ids),
        "int8_disagreements": disagree,
        "int8_warn_share": INT8_WARN_SHARE,
    }
    if run_top1:
        same = sum(class_names[i] == p for i, p in zip(top_fp32.tolist(), run_top1, strict=True))
        result["fp32_top1_vs_predictions_csv"] = same / len(run_top1)
    artifacts.write_json(out / ONNX_DIR / CHECK_FILE, result)
    return result


def warning_line(result: dict) -> str | None:
    share = 1.0 - result["int8_vs_fp32_top1_agreement"]
    if share <= INT8_WARN_SHARE:
        return None
    return (
        f"warning: int8 top-1 differs from fp32 on {share:.1%} of {result['num_images']} images (more than "
        f"{INT8_WARN_SHARE:.0%}); serve onnx/{FP32_FILE} or see onnx/{CHECK_FILE} for the images."
    )


def summary_lines(result: dict) -> list[str]:
    lines = [
        f"- Checked on {result['images']}.",
        f"- fp32 graph vs the merged torch model: max abs probability difference "
        f"{result['fp32_vs_torch_max_abs_diff']:.2e}.",
        f"- int8 vs fp32 top-1 agreement: {result['int8_vs_fp32_top1_agreement']:.1%} "
        f"({len(result['int8_disagreements'])} of {result['num_images']} differ).",
    ]
    if "fp32_top1_vs_predictions_csv" in result:
        lines.append(
            f"- fp32 top-1 vs the run's predictions.csv: {result['fp32_top1_vs_predictions_csv']:.1%}."
        )
    return lines


def read_check(out: Path) -> dict:
    return json.loads((out / ONNX_DIR / CHECK_FILE).read_text())
