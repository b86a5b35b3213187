"""Seeds and a paired test: one training per seed, then per-seed accuracy, mean +- std and McNemar vs zero-shot.

    clip-lora sweep --seeds 0,1,2 imagenette_vitb16 --output_dir runs/sweep   # any train flags follow
    python sweep.py --summarize runs/sweep                 # rebuild summary.json/.md from finished seed folders
    python sweep.py --readme runs/sweep/summary.json       # rewrite README.md's results block from a summary

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
from clip_lora import artifacts, run_dir, validation
from clip_lora.arguments import parse_args
from clip_lora.errors import ArgumentError, DataError, Parser
from clip_lora.stats import mcnemar, mean_std

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
    results = artifacts.read_json(folder / artifacts.ALL_RESULTS)
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
        f"`{summary['output_dir']}/{SUMMARY_JSON}` by `python sweep.py --readme`.\n"
    )
    return "\n".join(rows) + "\n" + note


def update_readme(summary_path: Path, readme: Path) -> None:
    """Replace the text between the results markers in readme with the table of summary_path (never typed numbers)."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ArgumentError(f"{readme} has no '{README_START}' ... '{README_END}' block to fill")
    table = to_markdown(artifacts.read_json(summary_path))
    readme.write_text(text[: start + len(README_START)] + "\n" + table + text[end:])


def main(argv: list[str] | None = None) -> dict | None:
    parser = Parser(prog="clip-lora sweep", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "--seeds", help="comma-separated seeds, e.g. 0,1,2; the other flags go to train_clip_lora"
    )
    parser.add_argument("--summarize", metavar="SWEEP_DIR", help="only rebuild the summary from seed folders")
    parser.add_argument("--readme", metavar="SUMMARY_JSON", help="only rewrite the README results block")
    parser.add_argument("--readme_path", default="README.md")
    args, train_argv = parser.parse_known_args(argv)
    if args.readme:
        update_readme(Path(args.readme), Path(args.readme_path))
        return None
    if args.summarize:
        return summarize(Path(args.summarize))
    if not args.seeds:
        parser.error("--seeds is required, e.g. --seeds 0,1,2")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    problem = next(
        (p for s in seeds if (p := validation.field_problem("seed", s, validation.SEED_RULE))), None
    )
    if not seeds or problem or len(set(seeds)) != len(seeds):
        raise ArgumentError(
            f"--seeds {args.seeds!r} must be distinct comma-separated integers in [0, {validation.SEED_RULE['max']}], "
            "e.g. 0,1,2."
        )
    output_dir = run_seeds(seeds, train_argv)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun/accelerate only the main process writes
        summary = summarize(output_dir, seeds)
        print(to_markdown(summary))
        return summary
    return None
