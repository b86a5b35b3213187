"""The README.md an ONNX export carries: how to run it with onnxruntime, numpy and Pillow alone, and its checks.

tests/test_onnx_export.py runs the README's python block as written, in a subprocess, and compares its answer.
"""

from __future__ import annotations

from pathlib import Path

from clip_lora.onnx_check import CHECK_FILE, summary_lines
from clip_lora.onnx_export import CLASSIFIER_FILE, FP32_FILE, INT8_FILE, ONNX_DIR

# Run from the export folder. Resize (shortest edge, bicubic), center crop, rescale, normalise: CLIPImageProcessor's
# steps. The whole classifier (prompts, logit scale, temperature included) is the graph: one run() call.
SNIPPET = f"""\
import json, numpy as np, onnxruntime as ort; from PIL import Image
pre, info = json.load(open("preprocessor_config.json")), json.load(open("{ONNX_DIR}/{CLASSIFIER_FILE}"))
img = Image.open("cat.jpg").convert("RGB"); e, c, (w, h) = pre["size"]["shortest_edge"], pre["crop_size"]["height"], img.size
r = img.resize((e * w // min(w, h), e * h // min(w, h)), Image.BICUBIC); left, top = (r.width - c) // 2, (r.height - c) // 2
x = ((np.asarray(r.crop((left, top, left + c, top + c))) / 255 - pre["image_mean"]) / pre["image_std"]).astype(np.float32)
probs = ort.InferenceSession("{ONNX_DIR}/{INT8_FILE}").run(None, {{"pixel_values": x.transpose(2, 0, 1)[None]}})[0][0]
print(info["class_names"][probs.argmax()], float(probs.max()))
"""


def card_text(result: dict, class_names: list[str], temperature: float) -> str:
    scaled = (
        f"divided by the fitted temperature {temperature:g}"
        if temperature != 1.0
        else "no fitted temperature"
    )
    return "\n".join(
        [
            "# CLIP + LoRA image classifier (ONNX)",
            "",
            f"`{ONNX_DIR}/{FP32_FILE}` (fp32) and `{ONNX_DIR}/{INT8_FILE}` (int8 dynamic quantization): one graph "
            f"each, `pixel_values (N, 3, H, W)` -> `probabilities (N, {len(class_names)})` over "
            f"{', '.join(class_names)}. The class prompts are encoded into the graph ({scaled}); "
            f"`{ONNX_DIR}/{CLASSIFIER_FILE}` lists the classes, prompts and scale.",
            "",
            "With onnxruntime, numpy and Pillow alone (`pip install onnxruntime pillow`), from this folder:",
            "",
            "```python",
            SNIPPET.rstrip("\n"),
            "```",
            "",
            "Or `clip-lora predict --model_name_or_path THIS_FOLDER photos/` (`--onnx int8` for the quantized graph).",
            "The merged `CLIPModel` beside it loads with transformers as usual.",
            "",
            f"## Checks (`{ONNX_DIR}/{CHECK_FILE}`, written by the export)",
            "",
            *summary_lines(result),
            "",
        ]
    )


def write_card(out: Path, result: dict, class_names: list[str], temperature: float) -> None:
    (out / "README.md").write_text(card_text(result, class_names, temperature))
