"""Benchmark: the project's pipeline against its own limit, every figure a ratio measured in the same run.

    python bench/run.py                   # ~4-5 min on 2 CPUs; prints NAME: VALUE lines, writes runs/bench/results.json
    python bench/run.py --write-results   # the same, then updates the committed bench/results.json and RESULTS.md
    python bench/run.py --quick           # a dry run of the bench itself (tiny model, few images): figures meaningless

Model: CLIP shaped like openai/clip-vit-base-patch16 with random weights (no download), LoRA at the seed config,
batch 8. Images: ~500x375 JPEGs made from ../shared/data (or generated). Peak-RSS figures run in fresh processes
(bench/worker.py) so each peak is that job's own. The GPU side is bench/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import measure, report  # noqa: E402
from bench.common import ROOT, make_jpegs, run_worker, splits_for, tokenizer_and_processor, vit_b16_lora  # noqa: E402
from clip_lora.preprocessing import prepare_splits  # noqa: E402

RESULTS_JSON = ROOT / "bench" / "results.json"  # committed: written with --write-results only
SCRATCH_JSON = ROOT / "runs" / "bench" / "results.json"  # git-ignored
FULL = dict(
    train_per_class=44,
    val_per_class=2,
    p1_steps=3,
    p2_images=200,
    naive_images=100,
    rss_images=100,
    eval_images=16,
    memory_steps=2,
)
QUICK = dict(
    train_per_class=12,
    val_per_class=2,
    p1_steps=2,
    p2_images=64,
    naive_images=32,
    rss_images=24,
    eval_images=8,
    memory_steps=1,
)


def machine() -> dict:
    import datasets
    import peft
    import torch
    import transformers

    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    names = (
        [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        if cpuinfo.is_file()
        else []
    )
    cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "peft": peft.__version__,
        "cuda": torch.cuda.is_available(),
    }


def run(quick: bool) -> dict:
    cfg = QUICK if quick else FULL
    start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="clip-lora-bench-"))
    stamps = {}

    def lap(name):
        stamps[name] = round(time.perf_counter() - start, 1)
        print(f"  [{stamps[name]:6.1f} s] {name}", file=sys.stderr, flush=True)

    try:
        data_dir, origin = make_jpegs(workdir / "images", cfg["train_per_class"], cfg["val_per_class"])
        tokenizer, processor, tokenizer_origin = tokenizer_and_processor(workdir)
        lap("images + tokenizer")
        p2 = measure.data_path_speedup(
            tokenizer, processor, data_dir, workdir, cfg["p2_images"], cfg["naive_images"]
        )
        lap("P2 data path")
        rss = {
            f"{k}x": run_worker(
                "data",
                "--data-dir",
                str(data_dir),
                "--cache-dir",
                str(workdir / f"rss{k}"),
                "--train",
                str(k * cfg["rss_images"]),
            )
            for k in (1, 4)
        }
        lap("P2 peak RSS 1x / 4x")
        model = vit_b16_lora(tiny=quick)
        lap("model")
        p1, trainer, _, collate = measure.train_step_ratio(
            model, tokenizer, processor, data_dir, workdir, steps=cfg["p1_steps"]
        )
        lap("P1 train step")
        val = prepare_splits(splits_for(data_dir, max_eval=cfg["eval_images"]), processor, "on_the_fly")[0][
            "val"
        ]
        p3 = measure.eval_ratio(trainer, val, collate)
        lap("P3 eval")
        sdpa = measure.sdpa_speedup(model)
        lap("SDPA")
        del model, trainer
        tiny = ["--tiny"] if quick else []
        memory = {
            mode: run_worker("train", "--mode", mode, "--steps", str(cfg["memory_steps"]), *tiny)
            for mode in ("lora", "full", "lora_gc")
        }
        lap("peak RSS lora / full / lora_gc")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rates = p2["images_per_s"]
    figures = {
        "P1_step_ratio": p1["ratio"],
        "P2_data_speedup": rates["cached_epoch2_workers0"] / p2["naive_images_per_s"],
        "P2_rss_growth": rss["4x"]["peak_rss_mb"] / rss["1x"]["peak_rss_mb"],
        "P2_anon_rss_growth": rss["4x"]["peak_anon_mb"] / rss["1x"]["peak_anon_mb"],
        "P3_eval_ratio": p3["ratio"],
        "peak_rss_lora_mb": memory["lora"]["peak_rss_mb"],
        "peak_rss_full_mb": memory["full"]["peak_rss_mb"],
        "peak_rss_lora_gc_mb": memory["lora_gc"]["peak_rss_mb"],
        "lora_vs_full_rss_ratio": memory["lora"]["peak_rss_mb"] / memory["full"]["peak_rss_mb"],
        "lora_gc_vs_lora_rss_ratio": memory["lora_gc"]["peak_rss_mb"] / memory["lora"]["peak_rss_mb"],
        "P2_cached_epoch1_speedup": rates["cached_epoch1"] / p2["naive_images_per_s"],
        "P2_on_the_fly_speedup": rates["on_the_fly_workers0"] / p2["naive_images_per_s"],
        "cached_workers2_speedup": rates["cached_epoch2_workers2_steady"]
        / rates["cached_epoch2_workers0_steady"],
        "on_the_fly_workers2_speedup": rates["on_the_fly_workers2_steady"]
        / rates["on_the_fly_workers0_steady"],
        "sdpa_speedup": sdpa["ratio"],
    }
    return {
        "figures": figures,
        "details": {
            "P1": p1,
            "P2": p2,
            "P2_rss": rss,
            "P3": p3,
            "sdpa": sdpa,
            "memory": memory,
            "laps_s": stamps,
        },
        "config": {
            **cfg,
            "quick": quick,
            "images": origin,
            "tokenizer": tokenizer_origin,
            "model": "tiny CLIP (dry run)" if quick else "ViT-B/16-shaped CLIP, random weights, LoRA r=16",
        },
        "machine": machine(),
        "command": "python bench/run.py" + (" --quick" if quick else ""),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_s": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write-results",
        action="store_true",
        help="also update the committed bench/results.json and RESULTS.md",
    )
    parser.add_argument(
        "--quick", action="store_true", help="dry run: tiny model, few images (figures meaningless)"
    )
    parser.add_argument("--output", default=str(SCRATCH_JSON), help="where the JSON results go")
    args = parser.parse_args(argv)
    if args.write_results and args.quick:
        parser.error("--write-results needs a full run (drop --quick): RESULTS.md reports real figures only")
    results = run(args.quick)
    for name, value in results["figures"].items():
        print(f"{name}: {value:.0f}" if name.endswith("_mb") else f"{name}: {value:.3f}")
    print(f"bench_wall_s: {results['wall_s']:.0f}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    if args.write_results:
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
        report.write_results_md(results, ROOT / "bench" / "RESULTS.md")
    return results


if __name__ == "__main__":
    main()
