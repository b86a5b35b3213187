"""Weights & Biases around a run: never prompt for a login, and log what a user looks at after the final evaluation.

    tracking.prepare(training_args.report_to)     # step 1 of main(): offline mode when there are no credentials
    tracking.log_final(training_args.report_to, output_dir)   # last step: zero-shot, val, per-class table, matrices

During training the Trainer's own WandbCallback logs the loss and the dev metrics (`--report_to wandb`);
`--report_to tensorboard` / `none` are the Trainer's as usual and this module does nothing for them.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from clip_lora import artifacts

OFFLINE_NOTICE = (
    "wandb: no credentials (WANDB_API_KEY or `wandb login`) and WANDB_MODE unset -> logging offline "
    "(sync later with `wandb sync {dir}/wandb/offline-run-*`)"
)


def uses_wandb(report_to) -> bool:
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    return "wandb" in names or "all" in names


def has_wandb_credentials() -> bool:
    """An API key in the environment, or a `wandb login` entry in ~/.netrc for the configured host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    try:
        entry = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def prepare(report_to) -> bool:
    """Switch wandb to offline (with a one-line notice) when it would otherwise prompt; True when it did."""
    if not uses_wandb(report_to) or os.environ.get("WANDB_MODE") or has_wandb_credentials():
        return False
    os.environ["WANDB_MODE"] = "offline"
    print(OFFLINE_NOTICE.format(dir=os.environ.get("WANDB_DIR", ".")), file=sys.stderr)
    return True


# wandb section <- all_results.json prefix: val, dev, zero-shot; val with the dev-fitted temperature; the control set.
SUMMARY_PREFIXES = (
    ("zero_shot", "zero_shot"),
    ("val", "eval"),
    ("dev", "dev"),
    ("val_temperature", "eval_temperature"),
    ("control_zero_shot", "control_zero_shot"),
    ("control", "control_eval"),
)


def log_final(
    report_to, output_dir: str | Path, confusion_png: str = artifacts.CONFUSION_MATRIX
) -> dict | None:
    """Log the zero-shot baseline, val and dev metrics, the per-class table and the confusion matrices to the
    run the Trainer opened (or a new one in an evaluation-only run), then finish it. Returns the logged scalars."""
    if not uses_wandb(report_to):
        return None
    import wandb

    out = Path(output_dir)
    results = artifacts.read_json(out / artifacts.ALL_RESULTS)
    report = artifacts.read_json(out / artifacts.CLASSIFICATION_REPORT_JSON)
    run = wandb.run or wandb.init(project=os.environ.get("WANDB_PROJECT", "huggingface"), name=out.name)
    scalars = {
        f"{split}/{metric}": results[f"{prefix}_{metric}"]
        for split, prefix in SUMMARY_PREFIXES
        for metric in ("accuracy", "macro_f1", "loss", "ece", "nll", "brier")
        if f"{prefix}_{metric}" in results
    }
    table = wandb.Table(columns=["class", "precision", "recall", "f1", "support"])
    for name, row in report["per_class"].items():
        table.add_data(name, row["precision"], row["recall"], row["f1"], row["support"])
    media = {"val/per_class": table}
    for key, png in (
        ("val/confusion_matrix", confusion_png),
        ("zero_shot/confusion_matrix", "zero_shot_confusion_matrix.png"),
    ):
        if (out / png).is_file():
            media[key] = wandb.Image(str(out / png))
    run.log({**scalars, **media})
    run.summary.update(scalars)
    run.finish()
    return scalars
