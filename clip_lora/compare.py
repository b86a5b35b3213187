"""clip-lora compare RUN_A RUN_B: two runs side by side, for when two numbers disagree.

    clip-lora compare runs/seed-0 runs/seed-1

Prints: the flags that shape a result and differ (run_dir.result_flags, the same list a resume checks); whether the
data are the same images (provenance.data_fingerprint: `files_sha256` over all splits, and each split's hash, so
"the same images, split differently" is told apart from "other data"); the library versions and commits; zero-shot,
fine-tuned (val) and dev accuracy; and the exact McNemar test between the two fine-tuned models' val predictions,
paired by image id (stats.mcnemar on "right or wrong" per image). McNemar needs the same val images: when the val
fingerprints differ it is not computed, and the report says why. `compare(a, b)` returns the same as a dict.

A missing folder, a folder that is no run, or a run without predictions.csv is one `error:` line (RunError).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from clip_lora import artifacts, run_dir, run_files
from clip_lora.artifacts import escape_path as escape
from clip_lora.card_text import LIBRARY_ORDER, ordered
from clip_lora.errors import Parser, RunError
from clip_lora.stats import mcnemar

NOT_COMPARED = {"data_source", "provenance"}  # reported in the data and versions sections instead
EXTRA_FLAGS = ("global_batch_size",)  # derived, but the number that defines a step


# What compare reads from each run, checked on read (run_files.py): an older run may lack provenance (its data are
# "unknown"), but a key that is there has the shape the report uses.
RUN_CONFIG_KEYS = {
    "provenance": run_files.OBJECT,
    "provenance.data": run_files.OBJECT,
    "provenance.versions": run_files.OBJECT,
    "provenance.code": run_files.OBJECT,
    "provenance.code.git_commit": run_files.OPTIONAL_STRING,
}
FINGERPRINT_KEYS = {"splits": run_files.OBJECT, "files_sha256": run_files.STRING, "images": run_files.NUMBER}


def load_run(folder: str | Path) -> dict:
    """A run's config, results and val predictions; RunError when the folder cannot be compared."""
    path = Path(folder)
    shown = artifacts.escape_path(path)
    if path.is_file():
        raise RunError(f"{shown} is a file, not a run folder; pass the --output_dir of a clip-lora run.")
    if not path.is_dir():
        raise RunError(f"run folder {shown} does not exist; pass the --output_dir of a clip-lora run.")
    missing = [name for name in (artifacts.RUN_CONFIG, artifacts.ALL_RESULTS) if not (path / name).exists()]
    if missing:
        raise RunError(
            f"{shown} is not a finished clip-lora run (no {' or '.join(missing)}); pass the --output_dir of a run."
        )
    if not (path / artifacts.PREDICTIONS).is_file():
        raise RunError(
            f"{shown} has no {artifacts.PREDICTIONS} (val predictions), so the runs cannot be paired; "
            "compare the local output folder of a run, not a pushed repo."
        )
    hint = "compare needs two complete runs of this version of clip-lora"
    config_file = path / artifacts.RUN_CONFIG
    config = run_files.read_json_object(
        config_file, optional=RUN_CONFIG_KEYS, hint=hint, shown=escape(config_file)
    )
    if "data" in config.get("provenance", {}):
        where = f"{escape(config_file)}: provenance.data"
        run_files.check_keys(config["provenance"]["data"], FINGERPRINT_KEYS, where=where, hint=hint)
    results_file = path / artifacts.ALL_RESULTS
    shown_numbers = (
        "zero_shot_accuracy",
        "eval_accuracy",
        "dev_accuracy",
        *OPTIONAL_ACCURACY,
        *CALIBRATION_ROWS,
    )
    numbers = dict.fromkeys(shown_numbers, run_files.OPTIONAL_NUMBER)  # printed with :.4f
    results = run_files.read_json_object(
        results_file, optional=numbers, hint=hint, shown=escape(results_file)
    )
    try:
        ids, labels, predictions, _ = artifacts.read_prediction_table(path / artifacts.PREDICTIONS)
    except (OSError, ValueError, KeyError, IndexError, StopIteration) as err:
        raise RunError(
            f"cannot read the run in {shown} ({type(err).__name__}: {err}); is it complete?"
        ) from None
    return {
        "path": str(path),
        "config": config,
        "results": results,
        "right": dict(zip(ids, (labels == predictions).tolist(), strict=True)),
    }


def _training_keys() -> set[str]:
    # TrainingArguments' fields, to tell our flags from Trainer's (imported here: it costs seconds, after the
    # inputs were checked).
    from clip_lora.arguments import ClipLoraTrainingArguments

    return {field.name for field in dataclasses.fields(ClipLoraTrainingArguments)}


def differing_flags(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(flag, A's value, B's value) for every result-shaping flag whose value differs."""
    keys = _training_keys()
    flags = [run_dir.result_flags(config, keys) for config in (a, b)]
    for extra in EXTRA_FLAGS:
        for found, config in zip(flags, (a, b), strict=True):
            if extra in config:
                found[extra] = config[extra]
    names = sorted((flags[0].keys() | flags[1].keys()) - NOT_COMPARED)
    return [
        (k, flags[0].get(k, "(unset)"), flags[1].get(k, "(unset)"))
        for k in names
        if flags[0].get(k) != flags[1].get(k)
    ]


def data_comparison(a: dict, b: dict) -> dict:
    """same: True / False / None (a run without a fingerprint); which splits differ; whether val is the same."""
    prints = [config.get("provenance", {}).get("data") for config in (a, b)]
    if not all(prints):
        return {"same": None, "val_same": None, "splits_differ": [], "fingerprints": prints}
    splits = sorted(prints[0]["splits"].keys() | prints[1]["splits"].keys())
    differ = [s for s in splits if prints[0]["splits"].get(s) != prints[1]["splits"].get(s)]
    return {
        "same": prints[0]["files_sha256"] == prints[1]["files_sha256"],
        "val_same": "val" not in differ,
        "splits_differ": differ,
        "fingerprints": prints,
    }


def version_differences(a: dict, b: dict) -> dict:
    records = [config.get("provenance", {}) for config in (a, b)]
    versions = [record.get("versions", {}) for record in records]
    commits = [record.get("code", {}).get("git_commit") for record in records]
    names = sorted(versions[0].keys() | versions[1].keys())
    return {
        "versions": versions,
        "differ": [
            (n, versions[0].get(n), versions[1].get(n))
            for n in names
            if versions[0].get(n) != versions[1].get(n)
        ],
        "commits": commits,
    }


def paired_test(a: dict, b: dict, val_same: bool | None) -> dict:
    """McNemar between A's and B's fine-tuned val predictions, on the images both predicted (by id)."""
    if val_same is False:
        return {"computed": False, "reason": "the val images differ (val fingerprints differ)"}
    common = sorted(a["right"].keys() & b["right"].keys())
    if not common:
        return {"computed": False, "reason": "the runs share no val image id"}
    a_right = np.array([a["right"][i] for i in common], dtype=np.int64)
    b_right = np.array([b["right"][i] for i in common], dtype=np.int64)
    # A prediction is right when it equals the label: right = 1 against a label of 1 counts exactly A's and B's hits.
    test = mcnemar(np.ones(len(common), dtype=np.int64), a_right, b_right)
    only = {"a": len(a["right"]) - len(common), "b": len(b["right"]) - len(common)}
    return {"computed": True, **test, "only_in": only}


OPTIONAL_ACCURACY = {
    "control_zero_shot_accuracy": "control, zero-shot",
    "control_eval_accuracy": "control, fine-tuned",
}
CALIBRATION_ROWS = {
    "zero_shot_ece": "ECE zero-shot (val)",
    "eval_ece": "ECE fine-tuned (val)",
    "eval_temperature_ece": "ECE fine-tuned, T",
    "temperature": "T (fitted on dev)",
}


def compare(folder_a: str | Path, folder_b: str | Path) -> dict:
    a, b = load_run(folder_a), load_run(folder_b)
    data = data_comparison(a["config"], b["config"])
    keys = ("zero_shot_accuracy", "eval_accuracy", "dev_accuracy")
    # Rows for what only some runs measure (a control set, calibration): shown when either run has them.
    keys += tuple(k for k in OPTIONAL_ACCURACY if any(k in run["results"] for run in (a, b)))
    calibration = tuple(k for k in CALIBRATION_ROWS if any(k in run["results"] for run in (a, b)))
    return {
        "runs": [a["path"], b["path"]],
        "flags": differing_flags(a["config"], b["config"]),
        "data": data,
        "versions": version_differences(a["config"], b["config"]),
        "accuracy": {key: [run["results"].get(key) for run in (a, b)] for key in keys},
        "calibration": {key: [run["results"].get(key) for run in (a, b)] for key in calibration},
        "mcnemar": paired_test(a, b, data["val_same"]),
    }


def _pair(pair: list) -> str:
    return "".join(f"{v:>8.4f}" if v is not None else f"{'-':>8}" for v in pair)


def _value(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _data_lines(data: dict) -> list[str]:
    prints = data["fingerprints"]
    if data["same"] is None:
        return ["data: unknown: a run without a data fingerprint (made before provenance was recorded)"]
    if not data["same"]:
        return [
            "data: THE DATA DIFFER: "
            + "; ".join(
                f"{run} {p['images']} images, files sha256 {p['files_sha256'][:16]}"
                for run, p in zip("AB", prints, strict=True)
            ),
            f"  splits that differ: {', '.join(data['splits_differ'])}",
        ]
    line = f"data: the same images ({prints[0]['images']}, files sha256 {prints[0]['files_sha256'][:16]})"
    if data["splits_differ"]:
        line += f"; split differently: {', '.join(data['splits_differ'])} (the dev split follows --seed)"
    return [line]


def format_report(report: dict) -> str:
    lines = [f"A: {report['runs'][0]}", f"B: {report['runs'][1]}", ""]
    if report["flags"]:
        lines.append("flags that differ (A -> B):")
        width = max(len(name) for name, _, _ in report["flags"])
        lines += [f"  {name:<{width}}  {_value(x)} -> {_value(y)}" for name, x, y in report["flags"]]
    else:
        lines.append("flags: the same")
    lines += _data_lines(report["data"])
    versions = report["versions"]
    if versions["differ"]:
        lines.append(
            "versions that differ (A -> B): " + "; ".join(f"{n} {x} -> {y}" for n, x, y in versions["differ"])
        )
    else:
        lines.append(
            "versions: the same ("
            + ", ".join(
                f"{n} {versions['versions'][0][n]}" for n in ordered(versions["versions"][0], LIBRARY_ORDER)
            )
            + ")"
        )
    commits = [c[:12] if c else "none" for c in versions["commits"]]
    lines.append(f"commit: {commits[0]}" + ("" if commits[0] == commits[1] else f" -> {commits[1]}"))
    lines += ["", f"{'accuracy':<24}{'A':>8}{'B':>8}"]
    names = {
        "zero_shot_accuracy": "zero-shot (val)",
        "eval_accuracy": "fine-tuned (val)",
        "dev_accuracy": "dev (selection)",
        **OPTIONAL_ACCURACY,
    }
    for key, pair in report["accuracy"].items():
        lines.append(f"  {names[key]:<22}" + _pair(pair))
    if report.get("calibration"):
        lines += [f"{'calibration':<24}{'A':>8}{'B':>8}"]
        lines += [
            f"  {CALIBRATION_ROWS[key]:<22}" + _pair(pair) for key, pair in report["calibration"].items()
        ]
    test = report["mcnemar"]
    if test["computed"]:
        unpaired = [f"{n} only in {run.upper()}" for run, n in test["only_in"].items() if n]
        lines += [
            "",
            f"McNemar, fine-tuned A vs B on {test['n']} val images (paired by image id"
            + (f"; {', '.join(unpaired)}" if unpaired else "")
            + f"): A right and B wrong {test['b']}, A wrong and B right {test['c']}, "
            f"exact two-sided p = {test['p_value']:.4g}",
        ]
    else:
        lines += ["", f"McNemar: not computed: {test['reason']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = Parser(prog="clip-lora compare", description=__doc__.splitlines()[0])
    parser.add_argument("run_a", help="a run's output folder")
    parser.add_argument("run_b", help="another run's output folder")
    args = parser.parse_args(argv)
    report = compare(args.run_a, args.run_b)
    print(format_report(report))
    return report
