"""`clip-lora export --onnx`: the fine-tuned classifier as ONE onnx graph, pixels in, class probabilities out.

    out/onnx/model.onnx             pixel_values (N, 3, H, W) float32 -> probabilities (N, C), fp32
    out/onnx/model_quantized.onnx   the same graph, int8 dynamic quantization of its weights (onnxruntime)
    out/onnx/classifier.json        class names, prompts, logit scale, temperature, input/output names
    out/onnx/export_check.json      fp32 vs the merged torch model, int8 vs fp32 (clip_lora/onnx_check.py)

beside the merged CLIPModel and its preprocessor_config.json (the layout the Hub's ONNX builds of CLIP use). The
graph is the evaluation's scoring with the text tower folded away: vision tower, projection, L2 normalisation,
cosine similarity against the fixed (C, D) class embeddings of the run's prompts, times the capped logit scale,
divided by the fitted temperature (temperature.json in the adapter folder, issue #26; 1 without one), softmax.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from clip_lora.loss import capped_logit_scale
from clip_lora.onnx_flags import ONNX_MODEL, require_onnx

ONNX_DIR, FP32_FILE = ONNX_MODEL.split(
    "/"
)  # "onnx", "model.onnx": defined where flags are checked, torch-free
INT8_FILE = "model_quantized.onnx"
CLASSIFIER_FILE = "classifier.json"
INPUT_NAME, OUTPUT_NAME = "pixel_values", "probabilities"
# The legacy TorchScript exporter: the dynamo one needs onnxscript, one more dependency, for the same graph here.
OPSET = 17


class ClassifierGraph(torch.nn.Module):
    """pixel_values -> probabilities: the evaluation's class_logits over fixed class embeddings, / T, softmax."""

    def __init__(self, clip_model, class_embeds: torch.Tensor, temperature: float = 1.0):
        super().__init__()
        self.vision_model = clip_model.vision_model
        self.visual_projection = clip_model.visual_projection
        self.register_buffer("class_embeds", class_embeds.detach().float().contiguous())
        self.register_buffer("logit_scale", capped_logit_scale(clip_model).detach().float().reshape(()))
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        image = F.normalize(self.visual_projection(pooled).float(), dim=-1)
        logits = self.logit_scale * image @ self.class_embeds.T  # = loss.class_logits
        return (logits / self.temperature).softmax(dim=-1)


def export_graph(graph: ClassifierGraph, path: Path, image_size: int) -> None:
    """The fp32 graph with a dynamic batch axis."""
    example = torch.zeros(2, 3, image_size, image_size)
    with warnings.catch_warnings():
        # Known and harmless here: the legacy exporter's deprecation notice, and the tracer noting python bools
        # from shape checks on the fixed image size (the batch axis stays dynamic: tests run batches of 1 and 100).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.eval(),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """onnxruntime's dynamic quantization: int8 weights, activations quantized per call (no calibration set)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic logs a root-logger warning suggesting shape pre-processing (for static quantization's
    # calibration); dynamic quantization of this graph does not need it, and the user cannot act on it.
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR
    try:
        quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def write_onnx(
    merged,
    class_embeds: torch.Tensor,
    out: Path,
    class_names: list[str],
    templates: list[str],
    temperature: float = 1.0,
) -> ClassifierGraph:
    """Write out/onnx/{model.onnx, model_quantized.onnx, classifier.json}; returns the torch graph (for the check)."""
    require_onnx("--onnx")
    folder = out / ONNX_DIR
    folder.mkdir(parents=True, exist_ok=True)
    graph = ClassifierGraph(merged, class_embeds, temperature).eval()
    image_size = merged.config.vision_config.image_size
    export_graph(graph, folder / FP32_FILE, image_size)
    quantize_int8(folder / FP32_FILE, folder / INT8_FILE)
    info = {
        "class_names": class_names,
        "prompt_templates": templates,
        "logit_scale": float(graph.logit_scale),
        "temperature": temperature,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "image_size": image_size,
        "files": {"fp32": FP32_FILE, "int8": INT8_FILE},
    }
    (folder / CLASSIFIER_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return graph
