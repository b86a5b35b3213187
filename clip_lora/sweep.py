"""Seeds and a paired test: one training per seed, then per-seed accuracy, mean +- std and McNemar vs zero-shot.

    clip-lora sweep --seeds 0,1,2 imagenette_vitb16 --output_dir runs/sweep   # any train flags follow
    clip-lora sweep --summarize runs/sweep                 # rebuild summary.json/.md from finished seed folders
    clip-lora sweep --readme runs/sweep/summary.json       # rewrite README.md's results block from a summary

Each seed runs `train_clip_lora.main` into <output_dir>/seed-<k> (a finished seed folder is reused, so an
interrupted sweep resumes). The McNemar test pairs each fine-tuned model's val predictions (predictions.csv) with the
zero-shot baseline's (zero_shot_predictions.csv) image by image: b = images only zero-shot gets right, c = images
only the fine-tuned model gets right, exact two-sided p-value (stats.py). The README's numbers come from here only.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import train_clip_lora
from clip_lora import artifacts, run_dir, run_files, sources
from clip_lora.arguments import parse_args
from clip_lora.errors import ArgumentError, DataError
from clip_lora.provenance import data_source
from clip_lora.stats import mcnemar, mean_std
from clip_lora.verb_args import seed_list, sweep_args

logger = logging.getLogger("sweep")

SUMMARY_JSON = artifacts.SWEEP_SUMMARY_JSON
SUMMARY_MD = artifacts.SWEEP_SUMMARY_MD
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
PER_SEED_KEYS = ("zero_shot_accuracy", "eval_accuracy", "eval_macro_f1", "dev_accuracy", "trainable_params")


def seed_dir(output_dir: Path, seed: int) -> Path:
    return output_dir / f"seed-{seed}"


def run_seeds(seeds: list[int], train_argv: list[str]) -> Path:
    """Train once per seed (flags appended last, so they win over a recipe); returns the sweep folder."""
    training_args = parse_args(train_argv)[3]  # a bad flag fails here, before any training
    output_dir = Path(training_args.output_dir)
    for seed in seeds:
        folder = seed_dir(output_dir, seed)
        if run_dir.is_finished(folder) and not training_args.overwrite_output_dir:
            logger.info("seed %d: %s is finished; reusing it", seed, folder)
            continue
        train_clip_lora.main([*train_argv, "--seed", str(seed), "--output_dir", str(folder)])
    return output_dir


def seed_summary(folder: Path, seed: int) -> dict:
    results = run_files.read_json_object(folder / artifacts.ALL_RESULTS)
    config = artifacts.read_run_config(folder)
    labels, tuned, _ = artifacts.read_predictions(folder / artifacts.PREDICTIONS)
    zs_labels, zero_shot, _ = artifacts.read_predictions(folder / artifacts.ZERO_SHOT_PREDICTIONS)
    if (
        labels != zs_labels
    ).any():  # both files are written from the same val order; anything else is a mix-up
        raise DataError(f"{folder}: predictions.csv and zero_shot_predictions.csv are not the same images")
    return {
        "seed": seed,
        **{k: results[k] for k in PER_SEED_KEYS if k in results},
        "mcnemar_vs_zero_shot": mcnemar(labels, zero_shot, tuned),
        # What ran, so --readme can tell the real experiment from a smoke or demo run.
        "model": config.get("model_name_or_path"),
        "data": data_source(config)["kind"] if config else None,
    }


def summarize(output_dir: Path, seeds: list[int] | None = None) -> dict:
    """summary.json + summary.md from the seed folders (all seed-* folders when seeds is None)."""
    output_dir = Path(output_dir)
    if seeds is None:
        seeds = sorted(
            int(m.group(1)) for p in output_dir.iterdir() if (m := re.fullmatch(r"seed-(\d+)", p.name))
        )
    per_seed = [seed_summary(seed_dir(output_dir, seed), seed) for seed in seeds]
    if not per_seed:
        raise DataError(f"no seed-<k> folders with results in {output_dir}")
    aggregate = {}
    for key in ("eval_accuracy", "zero_shot_accuracy", "eval_macro_f1"):
        values = [run[key] for run in per_seed if key in run]
        if len(values) == len(per_seed):
            aggregate[key] = dict(zip(("mean", "std"), mean_std(values), strict=True))
    summary = {
        "output_dir": str(output_dir),
        "seeds": seeds,
        "num_val_images": per_seed[0]["mcnemar_vs_zero_shot"]["n"],
        "per_seed": per_seed,
        "aggregate": aggregate,
    }
    artifacts.write_json(output_dir / SUMMARY_JSON, summary)
    (output_dir / SUMMARY_MD).write_text(to_markdown(summary))
    return summary


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def to_markdown(summary: dict) -> str:
    rows = [
        "| seed | zero-shot val acc | LoRA val acc | b (only zero-shot right) | c (only LoRA right) | McNemar p |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in summary["per_seed"]:
        test = run["mcnemar_vs_zero_shot"]
        rows.append(
            f"| {run['seed']} | {_pct(run['zero_shot_accuracy'])} | {_pct(run['eval_accuracy'])} | "
            f"{test['b']} | {test['c']} | {test['p_value']:.3g} |"
        )
    agg = summary["aggregate"]
    if "eval_accuracy" in agg:
        rows.append(
            f"| mean +- std | {_pct(agg['zero_shot_accuracy']['mean'])} | {_pct(agg['eval_accuracy']['mean'])}"
            f" +- {_pct(agg['eval_accuracy']['std'])} | | | |"
        )
    note = (
        f"\n{len(summary['seeds'])} seed(s), {summary['num_val_images']} val images each; b/c count the images "
        "the two models disagree on (exact two-sided McNemar test, stats.py). Generated from "
        f"`{summary['output_dir']}/{SUMMARY_JSON}` by `clip-lora sweep --readme {summary['output_dir']}/{SUMMARY_JSON}`.\n"
    )
    return "\n".join(rows) + "\n" + note


def local_runs(summary: dict) -> list[str]:
    """Why a summary's numbers are not the real experiment's: a seed run on a local model or local data (the smoke
    recipe, the demo), or a summary that does not record what ran. Empty when every run used Hub ids / archives."""
    reasons = []
    for run in summary["per_seed"]:
        if "model" not in run or "data" not in run:
            reasons.append(f"seed {run['seed']} does not record its model and data (an older summary)")
        elif not sources.is_hub_id(run["model"]) or run["data"] not in ("fastai_archive", "hub"):
            reasons.append(f"seed {run['seed']} ran {run['model']} on {run['data'] or 'unknown data'}")
    return reasons


def update_readme(summary_path: Path, readme: Path, allow_local_results: bool = False) -> None:
    """Replace the text between the results markers in readme with the table of summary_path (never typed numbers).

    The block holds the real experiment's numbers: a summary of runs on a local model or local data (a smoke or demo
    sweep) is refused unless allow_local_results, and then the block says where its numbers come from."""
    try:
        text, summary = readme.read_text(encoding="utf-8"), artifacts.read_json(summary_path)
        table = to_markdown(summary)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ArgumentError(
            f"cannot use --readme {summary_path} with --readme_path {readme} ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:160]}); pass a summary.json written by clip-lora sweep and the README."
        ) from None
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ArgumentError(f"{readme} has no '{README_START}' ... '{README_END}' block to fill")
    local = local_runs(summary)
    if local and not allow_local_results:
        raise ArgumentError(
            f"{summary_path} is not the real experiment ({local[0]}): its numbers would pass for real-hardware "
            "results in the README; run the sweep with Hub models and data, or pass --allow_local_results to "
            "write them with a note saying so."
        )
    if local:
        table = f"**Not the real experiment** ({'; '.join(local)}): a smoke or demo sweep.\n\n{table}"
    readme.write_text(text[: start + len(README_START)] + "\n" + table + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> dict | None:
    args, train_argv = sweep_args(argv)
    if args.readme:
        update_readme(Path(args.readme), Path(args.readme_path), args.allow_local_results)
        return None
    if args.summarize:
        return summarize(Path(args.summarize))
    output_dir = run_seeds(seed_list(args.seeds), train_argv)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun/accelerate only the main process writes
        summary = summarize(output_dir, seed_list(args.seeds))
        print(to_markdown(summary))
        return summary
    return None
