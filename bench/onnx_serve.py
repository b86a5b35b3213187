"""Serving an export on a CPU: the transformers pipeline vs torch vs `clip-lora predict` on the onnx graphs.

    python bench/onnx_serve.py --images 16                  # ViT-B/16 shape, random weights; ~6 min on 2 busy CPUs
    python bench/onnx_serve.py --images 16 --write-results  # also bench/onnx_results.json and bench/RESULTS.md
    python bench/onnx_serve.py --tiny --images 4            # a dry run of the script (tiny widths), ~1 min
    python bench/onnx_serve.py --images 4 --rounds 3        # the smallest sensible ViT-B/16 run

One export (`clip-lora export --onnx`'s writers, on a ViT-B/16-shaped CLIPModel with random weights, 10 ImageNette
classes, the real tokenizer when ../shared has it) and the same ~500x375 JPEGs for every path. Each round runs, one
after the other, on all the images (files on disk in, probabilities out, batch 16):
- pipeline: transformers' zero-shot-image-classification pipeline on the export with the run's labels and template
  (what a newcomer reaches for: it encodes the class prompts again for every image);
- torch_vision: the vision tower alone + the export's class_embeddings.safetensors, eager, no grad, the project's
  decode and CLIPImageProcessor (the fastest torch path, `--with_text_embeddings`);
- predict_fp32 / predict_int8: `clip-lora predict --model_name_or_path EXPORT --onnx fp32|int8 --output x.csv`,
  in-process (find files, decode, numpy pixels, onnxruntime, CSV);
- bare_int8: session.run over the same images' pixels already in memory (the predict path's floor).
One image at a time, as a newcomer serves (the same images, files in):
- pipeline_per_image: the pipeline called once per image with the run's labels (`classify(path, candidate_labels=
  labels)` in a loop: the prompts are encoded again on every call);
- predict_per_image: `clip-lora predict --model_name_or_path EXPORT IMAGE` (onnx fp32, the default) once per image,
  in-process: every call loads the session and classifier.json, decodes its JPEG, runs, writes its CSV;
- bare_fp32_per_image: session.run, batch 1, over the same images' pixels in memory (session loaded once);
- and, apart, what predict_per_image is made of: `session_load` (OnnxClassifier: classifier.json, pixel config,
  the fp32 session) and `decode` (open + resize + normalise one JPEG), each per image.
img/s from each path's median round; every ratio is the median over rounds of the two paths' times in the same round
(predict's overhead: predict_int8 / bare_int8). This 2-CPU machine is shared with other jobs: one path's time varies
up to 3x between rounds, hence several rounds and ratios within a round.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import TEMPLATE, make_jpegs, tokenizer_and_processor, vit_b16_clip  # noqa: E402

RESULTS = HERE / "onnx_results.json"
BATCH = 16
PATHS = ("pipeline", "torch_vision", "predict_fp32", "predict_int8", "bare_int8")
PER_IMAGE = ("pipeline_per_image", "predict_per_image", "bare_fp32_per_image", "session_load", "decode")


def build_export(workdir: Path, tiny: bool) -> tuple[Path, list[str]]:
    """The merged model + onnx/ as `clip-lora export --with_text_embeddings --onnx` writes them."""
    from transformers import CLIPProcessor

    from clip_lora import export
    from clip_lora.data import IMAGENETTE_CLASSES

    tokenizer, image_processor, origin = tokenizer_and_processor(workdir)
    merged = vit_b16_clip(tiny=tiny).eval()
    class_names = list(IMAGENETTE_CLASSES.values())
    merged.config.id2label = dict(enumerate(class_names))
    merged.config.label2id = {name: i for i, name in enumerate(class_names)}
    for tower in (merged.config.vision_config, merged.config.text_config):
        tower.projection_dim = merged.config.projection_dim
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    out = workdir / "export"
    export._write_export(merged, processor, out, class_names, [TEMPLATE], with_text_embeddings=True)
    # No run folder: the export's check runs on random pixels (its numbers are the tests' business, not the bench's).
    export._write_onnx(merged, processor, out, workdir / "no-run", class_names, [TEMPLATE], 1.0)
    return out, [origin]


def runners(out: Path, image_paths: list[Path], class_names: list[str]):
    """name -> a function classifying all the images once (files in, probabilities out)."""
    import numpy as np
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection, pipeline

    from clip_lora import onnx_predict
    from clip_lora.export import read_class_embeddings
    from clip_lora.images import open_image
    from clip_lora.pixels import ClipPixels
    from clip_lora.verb_args import predict_args

    classify = pipeline("zero-shot-image-classification", model=str(out))
    vision = CLIPVisionModelWithProjection.from_pretrained(out).eval()
    processor = CLIPImageProcessor.from_pretrained(out)
    embeds, scale = read_class_embeddings(out)
    session = onnx_predict.inference_session(out / "onnx" / "model_quantized.onnx")  # predict's own settings
    session_fp32 = onnx_predict.inference_session(out / "onnx" / "model.onnx")
    to_pixels = ClipPixels.from_pretrained(out)
    pixels = to_pixels([open_image(p) for p in image_paths])
    files = [str(p) for p in image_paths]

    def run_pipeline():
        classify(files, candidate_labels=class_names, hypothesis_template=TEMPLATE, batch_size=BATCH)

    @torch.no_grad()
    def run_torch():
        images = [open_image(p) for p in image_paths]
        for i in range(0, len(images), BATCH):
            batch = processor(images=images[i : i + BATCH], return_tensors="pt")["pixel_values"]
            image = torch.nn.functional.normalize(vision(pixel_values=batch).image_embeds, dim=-1)
            (scale * image @ embeds.T).softmax(dim=-1)

    def run_predict(precision):
        argv = ["--model_name_or_path", str(out), *files, "--onnx", precision, "--batch_size", str(BATCH)]
        args = predict_args([*argv, "--output", str(out.parent / f"{precision}.csv")])
        return lambda: onnx_predict.main(args)

    def run_bare():
        for i in range(0, len(pixels), BATCH):
            session.run(None, {"pixel_values": np.ascontiguousarray(pixels[i : i + BATCH])})

    def run_pipeline_per_image():
        for file in files:
            classify(file, candidate_labels=class_names, hypothesis_template=TEMPLATE)

    def run_predict_per_image():
        for i, file in enumerate(files):
            args = predict_args(
                ["--model_name_or_path", str(out), file, "--output", str(out.parent / f"{i}.csv")]
            )
            onnx_predict.main(args)

    def run_bare_per_image():
        for i in range(len(pixels)):
            session_fp32.run(None, {"pixel_values": np.ascontiguousarray(pixels[i : i + 1])})

    def run_session_loads():  # as many loads as predict_per_image makes, so the two share a unit
        for _ in files:
            onnx_predict.OnnxClassifier(out, "fp32")

    def run_decodes():
        for file in files:
            to_pixels([open_image(file)])

    return {
        "pipeline": run_pipeline,
        "torch_vision": run_torch,
        "predict_fp32": run_predict("fp32"),
        "predict_int8": run_predict("int8"),
        "bare_int8": run_bare,
        "pipeline_per_image": run_pipeline_per_image,
        "predict_per_image": run_predict_per_image,
        "bare_fp32_per_image": run_bare_per_image,
        "session_load": run_session_loads,
        "decode": run_decodes,
    }


def measure(run, rounds: int) -> dict[str, list[float]]:
    times = {name: [] for name in run}
    for _ in range(rounds):  # the paths alternate: a slow spell of this shared machine hits every path alike
        for name, fn in run.items():
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                fn()
            times[name].append(time.perf_counter() - start)
    return times


def figures(times: dict[str, list[float]], images: int) -> dict:
    """img/s from each path's median round; each ratio the median over rounds of the two paths' times in that round
    (seconds apart: the load of this shared machine cancels better than across rounds)."""

    def ratio(slow: str, fast: str) -> float:
        return statistics.median(s / f for s, f in zip(times[slow], times[fast], strict=True))

    return {
        "img_per_s": {
            name: round(images / statistics.median(ts), 3)
            for name, ts in times.items()
            if name not in ("session_load", "decode")  # parts of a path, in per_image_ms
        },
        "int8_vs_torch": ratio("torch_vision", "predict_int8"),
        "fp32_vs_torch": ratio("torch_vision", "predict_fp32"),
        "predict_vs_pipeline": ratio("pipeline", "predict_fp32"),
        "int8_predict_vs_pipeline": ratio("pipeline", "predict_int8"),
        "predict_overhead": ratio("predict_int8", "bare_int8"),
        # One image per call: the newcomer's loop against predict's, and what predict's call is made of.
        "predict_vs_pipeline_per_image": ratio("pipeline_per_image", "predict_per_image"),
        "pipeline_per_image_vs_batched": ratio("pipeline_per_image", "pipeline"),
        "predict_per_image_overhead": ratio("predict_per_image", "bare_fp32_per_image"),
        "predict_per_image_vs_its_parts": statistics.median(
            p / (b + s + d)
            for p, b, s, d in zip(
                times["predict_per_image"],
                times["bare_fp32_per_image"],
                times["session_load"],
                times["decode"],
                strict=True,
            )
        ),
        "per_image_ms": {
            name: round(1000 * statistics.median(times[name]) / images, 1) for name in PER_IMAGE
        },
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--tiny", action="store_true", help="tiny widths at 224 px: checks the script, not speed"
    )
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    laps, started = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        out, (tokenizer_origin,) = build_export(workdir, args.tiny)
        laps["export"] = time.perf_counter() - started
        root, image_origin = make_jpegs(workdir / "images", 0, -(-args.images // 10))
        image_paths = sorted((root / "val").rglob("*.JPEG"))[: args.images]
        class_names = json.loads((out / "class_prompts.json").read_text())["class_names"]
        run = runners(out, image_paths, class_names)
        for (
            fn
        ) in run.values():  # warm-up: first calls allocate, load kernels, build the pipeline's text batch
            with contextlib.redirect_stdout(io.StringIO()):
                fn()
        laps["warm-up"] = time.perf_counter() - started
        times = measure(run, args.rounds)
        laps["rounds"] = time.perf_counter() - started
        sizes = {f.name: f.stat().st_size for f in (out / "onnx").glob("*.onnx")}
    import onnxruntime

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    result = {
        **figures(times, len(image_paths)),
        "times_s": {name: [round(t, 2) for t in ts] for name, ts in times.items()},
        "images": len(image_paths),
        "rounds": args.rounds,
        "batch": BATCH,
        "model": "tiny widths (dry run)" if args.tiny else "ViT-B/16-shaped CLIP, random weights",
        "image_origin": image_origin,
        "tokenizer": tokenizer_origin,
        "onnx_mb": {name: round(size / 2**20, 1) for name, size in sizes.items()},
        "laps_s": {name: round(t, 1) for name, t in laps.items()},
        "machine": f"{platform.processor() or 'unknown'} {os.cpu_count()} CPUs (shared with other jobs, busy); "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
        f"transformers {transformers.__version__}",
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(result, indent=1))
    if args.write_results and not args.tiny:
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")
        from bench import report

        report.main(["--write-results"])
    return result


if __name__ == "__main__":
    main()
