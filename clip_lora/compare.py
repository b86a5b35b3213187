"""clip-lora compare RUN_A RUN_B: two runs side by side, for when two numbers disagree.

    clip-lora compare runs/seed-0 runs/seed-1

Prints: the flags that shape a result and differ (run_dir.result_flags, the same list a resume checks); how a
training step was made, as each run recorded it (provenance's batch: processes, per-device batch, accumulation,
global batch, precision), with a note that the runs drew different dropout masks when LoRA dropout is on and the
process layout differs (equal numbers are then not expected); whether the
data are the same images (provenance.data_fingerprint: `files_sha256` over all splits, and each split's hash, so
"the same images, split differently" is told apart from "other data"); the library versions and commits; zero-shot,
fine-tuned (val) and dev accuracy; and the exact McNemar test between the two fine-tuned models' val predictions,
paired by image id (stats.mcnemar on "right or wrong" per image). McNemar needs the same val images: when the val
fingerprints differ it is not computed, and the report says why. `compare(a, b)` returns the same as a dict
(clip_lora/compare_report.py writes the text).

A missing folder, a file, a folder that is no run, or a run without predictions.csv is one `error:` line (RunError),
given before anything heavy is imported (verb_args.check_run_folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from clip_lora import artifacts, run_dir, run_files, verb_args
from clip_lora.artifacts import escape_path as escape
from clip_lora.compare_report import CALIBRATION_ROWS, OPTIONAL_ACCURACY, STEP_NAMES, format_report
from clip_lora.errors import RunError
from clip_lora.stats import mcnemar

NOT_COMPARED = {"data_source", "provenance"}  # reported in the data and versions sections instead
EXTRA_FLAGS = ("global_batch_size",)  # derived, but the number that defines a step


# What compare reads from each run, checked on read (run_files.py): an older run may lack provenance (its data are
# "unknown"), but a key that is there has the shape the report uses.
RUN_CONFIG_KEYS = {
    "provenance": run_files.OBJECT,
    "provenance.data": run_files.OPTIONAL_OBJECT,  # null: not recorded (data "unknown")
    "provenance.versions": run_files.OBJECT,
    "provenance.code": run_files.OBJECT,
    "provenance.code.git_commit": run_files.OPTIONAL_STRING,
}
FINGERPRINT_KEYS = {"splits": run_files.OBJECT, "files_sha256": run_files.STRING, "images": run_files.NUMBER}


def load_run(folder: str | Path) -> dict:
    """A run's config, results and val predictions; RunError when the folder cannot be compared."""
    path = Path(folder)
    shown = artifacts.escape_path(path)
    verb_args.check_run_folder(path)
    hint = "compare needs two complete runs of this version of clip-lora"
    config_file = path / artifacts.RUN_CONFIG
    config = run_files.read_json_object(
        config_file, optional=RUN_CONFIG_KEYS, hint=hint, shown=escape(config_file)
    )
    if config.get("provenance", {}).get("data") is not None:
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


LAYOUT_KEYS = ("processes", "per_device_train_batch_size", "gradient_accumulation_steps")
# Flags the step section reports as they ran (the per-device batch follows the process count under
# --global_batch_size): listed there, not as flags, when both runs recorded their batch.
STEP_FLAGS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "global_batch_size",
    "bf16",
    "fp16",
)


def step_comparison(a: dict, b: dict) -> dict:
    """How each run made a training step (processes, per-device batch, accumulation, global batch, precision), what
    differs, and whether the runs drew different dropout masks: LoRA dropout > 0 with another process layout draws
    its masks on other shapes and other ranks' generators (same distribution, other numbers)."""
    batches = [config.get("provenance", {}).get("batch") for config in (a, b)]
    evaluations = [run for run, config in zip("AB", (a, b), strict=True) if config.get("do_train") is False]
    if evaluations:  # an evaluation made no step: its batch says nothing about training
        return {"known": False, "why": f"{' and '.join(evaluations)} only evaluated (--do_train false)"}
    if not all(batches):
        unknown = [run for run, batch in zip("AB", batches, strict=True) if not batch]
        return {
            "known": False,
            "why": f"not recorded by {' and '.join(unknown)} (a run older than provenance)",
        }
    differ = [(key, batches[0].get(key), batches[1].get(key)) for key in STEP_NAMES]
    differ = [row for row in differ if row[1] != row[2]]
    dropout = [float(config.get("lora_dropout") or 0) for config in (a, b)]
    layout_differs = any(key in LAYOUT_KEYS for key, _, _ in differ)
    return {
        "known": True,
        "batches": batches,
        "differ": differ,
        "lora_dropout": dropout,
        "dropout_masks_differ": layout_differs and max(dropout) > 0,
    }


def differing_flags(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(flag, A's value, B's value) for every result-shaping flag whose value differs; the flags of how a step was
    made are left to step_comparison when both runs recorded their batch."""
    keys = _training_keys()
    flags = [run_dir.result_flags(config, keys) for config in (a, b)]
    for extra in EXTRA_FLAGS:
        for found, config in zip(flags, (a, b), strict=True):
            if extra in config:
                found[extra] = config[extra]
    reported_as_step = set(STEP_FLAGS) if step_comparison(a, b)["known"] else set()
    names = sorted((flags[0].keys() | flags[1].keys()) - NOT_COMPARED - reported_as_step)
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
        "step": step_comparison(a["config"], b["config"]),
        "data": data,
        "versions": version_differences(a["config"], b["config"]),
        "accuracy": {key: [run["results"].get(key) for run in (a, b)] for key in keys},
        "calibration": {key: [run["results"].get(key) for run in (a, b)] for key in calibration},
        "mcnemar": paired_test(a, b, data["val_same"]),
    }


def main(argv: list[str] | None = None) -> dict:
    args = verb_args.compare_args(argv)
    report = compare(args.run_a, args.run_b)
    print(format_report(report))
    return report
