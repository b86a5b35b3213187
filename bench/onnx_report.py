"""The "Serving an export on a CPU" section of bench/RESULTS.md, from bench/onnx_serve.py's JSON (bench/report.py
writes the file)."""

from __future__ import annotations

# figure -> (goal as text, test, what it compares), for bench/onnx_serve.py's JSON
ONNX_FIGURES = {
    "int8_vs_torch": (
        ">= 2.5",
        lambda v: v >= 2.5,
        "img/s of `clip-lora predict --onnx int8` / the torch vision tower + class embeddings (eager)",
    ),
    "fp32_vs_torch": (
        ">= 1.0",
        lambda v: v >= 1.0,
        "img/s of `clip-lora predict` (onnx fp32) / the same torch path",
    ),
    "predict_vs_pipeline": (
        ">= 10",
        lambda v: v >= 10,
        "img/s of `clip-lora predict` (onnx fp32) / transformers' zero-shot-image-classification pipeline",
    ),
    "int8_predict_vs_pipeline": ("", None, "the same with `--onnx int8`"),
    "predict_vs_pipeline_per_image": (
        "",
        None,
        "one image per call: `clip-lora predict EXPORT IMAGE` in a loop / the pipeline called per image with the "
        "run's labels",
    ),
    "pipeline_per_image_vs_batched": ("", None, "the pipeline one image per call / batch 16"),
    "predict_per_image_overhead": (
        "",
        None,
        "`clip-lora predict` per image (session load, decode, CSV each call) / a bare fp32 session.run per image",
    ),
    "predict_per_image_vs_its_parts": (
        "",
        None,
        "`clip-lora predict` per image / (session load + JPEG decode + bare session.run), each timed alone",
    ),
    "predict_overhead": (
        "<= 1.1",
        lambda v: v <= 1.1,
        "`clip-lora predict --onnx int8` time (files to CSV, session load included) / a bare session.run loop over "
        "the same images' pixels in memory",
    ),
}
# Why the goals marked **no** are not met (read off the figures below, not measured separately).
ONNX_GAPS = (
    "Goals not met, and why. **predict_vs_pipeline**: with transformers 5.25 the pipeline at 10 labels costs about "
    "what the torch vision-only path costs here (10 short prompts are little next to the image tower's 197 "
    "tokens); the issue's 0.17 img/s for it was not reproduced on this machine, so 10x cannot come from serving "
    "alone. **predict_overhead**: predict's call also decodes and resizes 16 ~500x375 JPEGs and loads the session, "
    "~0.2-0.3 s against a ~1.1 s int8 loop; the share falls as a call classifies more images (not measured here)."
)
LABELS = {
    "pipeline": "transformers pipeline (10 labels)",
    "torch_vision": "torch vision tower + class embeddings",
    "predict_fp32": "`clip-lora predict` onnx fp32",
    "predict_int8": "`clip-lora predict --onnx int8`",
    "bare_int8": "bare onnxruntime loop, int8",
    "pipeline_per_image": "transformers pipeline, one image per call",
    "predict_per_image": "`clip-lora predict`, one image per call (fp32)",
    "bare_fp32_per_image": "bare onnxruntime, fp32, one image per run",
}


def render_onnx(onnx: dict | None) -> list[str]:
    lines = ["## Serving an export on a CPU (onnx)", ""]
    if not onnx:
        return [*lines, "`python bench/onnx_serve.py --write-results` has not run yet."]
    lines += [
        f"From `python bench/onnx_serve.py --images {onnx['images']} --write-results` (commit {onnx['commit']}, "
        f"{onnx['date']}): {onnx['model']}, {onnx['images']} JPEGs (~500x375, {onnx['image_origin']}), batch "
        f"{onnx['batch']}, {onnx['rounds']} rounds in which the paths alternate; img/s from each path's median round, each ratio the "
        "median over rounds of the two paths' times in the same round. "
        f"Machine: {onnx['machine']}. No GPU was available for this measurement.",
        "",
        "| figure | value | goal | met | what it compares |",
        "|---|---|---|---|---|",
    ]
    for name, (goal, test, what) in ONNX_FIGURES.items():
        if name not in onnx:  # a figure added after these results were measured
            continue
        value = onnx[name]
        met = "" if test is None else ("yes" if test(value) else "**no**")
        lines.append(f"| `{name}` | {value:.2f} | {goal} | {met} | {what} |")
    lines += ["", "| path | img/s | seconds per round |", "|---|---|---|"]
    for name, label in LABELS.items():
        if name not in onnx["times_s"]:
            continue
        times = ", ".join(f"{t:.2f}" for t in onnx["times_s"][name])
        lines.append(f"| {label} | {onnx['img_per_s'][name]:.3f} | {times} |")
    if "per_image_ms" in onnx:
        parts = ", ".join(f"{name} {ms} ms" for name, ms in onnx["per_image_ms"].items())
        lines += ["", f"Per image (median round / images): {parts}."]
    sizes = ", ".join(f"{name} {mb} MB" for name, mb in onnx["onnx_mb"].items())
    lines += ["", f"Graph sizes: {sizes}. Laps (s since start): {onnx['laps_s']}.", "", ONNX_GAPS]
    return lines
