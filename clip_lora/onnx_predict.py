"""`clip-lora predict --model_name_or_path EXPORT_DIR`, served by the export's onnx graph: neither torch, nor
transformers, nor peft is imported on this path (tests/test_onnx_predict.py checks sys.modules in a subprocess).

    clip-lora predict --model_name_or_path runs/demo-onnx photos/ --output preds.csv       # fp32 graph
    clip-lora predict --model_name_or_path runs/demo-onnx photos/ --onnx int8              # the quantized one

Decode as training does (clip_lora/images.py), pixels as CLIPImageProcessor makes them (clip_lora/pixels.py), one
session.run per batch; classes, prompts and temperature are the ones fixed in the graph (onnx/classifier.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from clip_lora import progress
from clip_lora.class_names import normalise
from clip_lora.errors import PredictError
from clip_lora.pixels import ClipPixels
from clip_lora.predict_output import Row, find_images, read_images, report
from clip_lora.run_files import OBJECT, STRING, STRING_LIST, read_json_object

CLASSIFIER_FILE = "classifier.json"  # = onnx_export.CLASSIFIER_FILE (that module imports torch)


def inference_session(path: str | Path):
    """A CPU session whose idle threads sleep instead of spinning: on a machine whose cores are shared (measured on
    this 2-CPU VM, bench/onnx_serve.py) spinning threads take the cores the busy ones need; fp32 ran ~15% faster."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """An export's onnx graph, its pixel preprocessing and class names: images in, (N, C) probabilities out."""

    def __init__(self, model_dir: str | Path, precision: str = "fp32"):
        folder = Path(model_dir) / "onnx"
        keys = {"class_names": STRING_LIST, "files": OBJECT, f"files.{precision}": STRING}
        keys |= {"input": STRING, "output": STRING}
        hint = "export the run again (clip-lora export --onnx)"
        self.info = read_json_object(folder / CLASSIFIER_FILE, keys, error=PredictError, hint=hint)
        # The same class-name layer as every other path (a graph exported by an older version, or edited by hand)
        self.class_names = normalise(
            self.info["class_names"], where=f"the class names of {folder / CLASSIFIER_FILE}"
        )
        self.to_pixels = ClipPixels.from_pretrained(model_dir)
        path = folder / self.info["files"][precision]
        self.session = inference_session(path)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run([self.info["output"]], {self.info["input"]: pixels})[0]

    def __call__(self, images: list, batch_size: int = 32) -> np.ndarray:
        batches = range(0, len(images), batch_size)
        probs = [
            self.probabilities(self.to_pixels(images[i : i + batch_size]))
            for i in progress.bar(batches, desc="Classifying", unit="batch")
        ]
        return np.concatenate(probs) if probs else np.zeros((0, len(self.class_names)), dtype=np.float32)


def main(args: argparse.Namespace) -> list[Row]:
    paths = find_images(args.inputs)
    classifier = OnnxClassifier(args.model_name_or_path, args.onnx or "fp32")
    images, names, skipped = read_images(paths, args.inputs)
    return report(args, names, classifier(images, args.batch_size), classifier.class_names, skipped)
