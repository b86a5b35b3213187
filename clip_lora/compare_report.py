"""`clip-lora compare`'s report as text: the dict compare.compare returns, one section per question (flags, how a
step was made, data, versions, accuracy, calibration, McNemar)."""

from __future__ import annotations

import json

from clip_lora.card_text import LIBRARY_ORDER, ordered

# How a step was made, from provenance["batch"] (the batch as it ran): key -> name in the report.
STEP_NAMES = {
    "processes": "processes",
    "per_device_train_batch_size": "per-device batch",
    "gradient_accumulation_steps": "accumulation steps",
    "global_batch_size": "global batch",
    "precision": "precision",
}
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


def _pair(pair: list) -> str:
    return "".join(f"{v:>8.4f}" if v is not None else f"{'-':>8}" for v in pair)


def _value(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _step(batch: dict) -> str:
    return (
        f"{batch.get('processes')} process(es) x {batch.get('per_device_train_batch_size')} per device x "
        f"{batch.get('gradient_accumulation_steps')} accumulation = global batch {batch.get('global_batch_size')}, "
        f"precision {batch.get('precision')}"
    )


def _step_lines(step: dict) -> list[str]:
    if not step["known"]:
        return [f"how a step was made: {step['why']}"]
    if not step["differ"]:
        return [f"how a step was made: the same ({_step(step['batches'][0])})"]
    lines = [
        "how a step was made (A -> B): "
        + "; ".join(f"{STEP_NAMES[k]} {x} -> {y}" for k, x, y in step["differ"]),
        f"  A: {_step(step['batches'][0])}",
        f"  B: {_step(step['batches'][1])}",
    ]
    if step["dropout_masks_differ"]:
        dropout = " / ".join(f"{d:g}" for d in step["lora_dropout"])
        lines.append(
            f"  lora_dropout {dropout} with another process layout: the runs drew different dropout masks (same "
            "distribution, other random numbers), so equal numbers are not expected."
        )
    return lines


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
    lines += _step_lines(report["step"])
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
