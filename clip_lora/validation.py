"""One validation step for every flag, run while the argument dataclasses are built, before any data or model.

Each flag's rule lives next to its definition, in the dataclass field's metadata (`"min": 1`, `"choices": (...)`,
`"template": True`, ...); TrainingArguments' inherited fields get theirs from TRAINING_RULES below. ONE walker,
`check_fields`, applies them all, plus what holds for every field of a type: a float is finite (unless
`"allow_inf"`), a string is UTF-8 text without NUL bytes. `check_run` then judges what needs several flags or a
file: metric names, epochs vs. steps, template files, the class-names file, the adapter, folders that must exist.

    check_fields(data_args)                     # in each dataclass's __post_init__: raises ArgumentError
    check_run(model_args, data_args, lora_args, training_args)   # at the end of parse_args
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

from clip_lora.errors import ArgumentError

# Rules for TrainingArguments' own fields (the ones ClipLoraTrainingArguments redefines carry them in metadata).
TRAINING_RULES: dict[str, dict] = {
    "eval_accumulation_steps": {"min": 1},
    "weight_decay": {"min": 0},
    "adam_beta1": {"min": 0, "lt": 1},
    "adam_beta2": {"min": 0, "lt": 1},
    "adam_epsilon": {"min": 0},
    "max_grad_norm": {"min": 0},
    "max_steps": {"min": -1},
    "warmup_steps": {"min": 0},
    "eval_steps": {"gt": 0},
    "save_steps": {"gt": 0},
    "label_smoothing_factor": {"min": 0, "lt": 1},
    "data_seed": {"min": 0, "max": 2**32 - 1},
    "dataloader_prefetch_factor": {"min": 1},
    "torch_empty_cache_steps": {"min": 1},
    "output_dir": {"nonempty": True},
    "report_to": {"choices": ("all", "none", *INTEGRATION_TO_CALLBACK)},
}
# The metadata keys that are rules (HfArgumentParser must not pass them to argparse).
RULE_KEYS = frozenset(
    {"min", "gt", "max", "lt", "choices", "nonempty", "names", "template", "allow_inf", "example"}
)
SEED_RULE = {"min": 0, "max": 2**32 - 1}  # numpy's seed range: a bigger one fails inside set_seed
MAX_LOADER_WORKERS = (
    256  # far above any useful value; a huge one would fork processes until the machine stalls
)


def _fmt(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _interval(rules: dict) -> str:
    if ("min" in rules or "gt" in rules) and ("max" in rules or "lt" in rules):
        low = f"[{rules['min']}" if "min" in rules else f"({rules['gt']}"
        high = f"{rules['max']}]" if "max" in rules else f"{rules['lt']})"
        return f"in {low}, {high}"
    if "min" in rules:
        return f">= {rules['min']}"
    if "gt" in rules:
        return f"> {rules['gt']}"
    return f"<= {rules['max']}" if "max" in rules else f"< {rules['lt']}"


def _out_of_range(value, rules: dict) -> bool:
    return (
        ("min" in rules and value < rules["min"])
        or ("gt" in rules and value <= rules["gt"])
        or ("max" in rules and value > rules["max"])
        or ("lt" in rules and value >= rules["lt"])
    )


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL byte"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return (
            "contains bytes that are not UTF-8 text; pass UTF-8 (rename the file or folder if it is a path)"
        )
    return None


def field_problem(name: str, value, rules: dict, default=None) -> str | None:
    """Why `--name value` breaks `rules` (the message after the flag), or None when it is fine."""
    example = rules.get("example", default)
    hint = f"; e.g. {example}." if example is not None and example != "" else "."
    if isinstance(value, (list, tuple)):
        return next((p for v in value if (p := field_problem(name, v, rules)) is not None), None)
    if value is None:
        return None
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem:
            return f"{value!r} {problem}."
        if rules.get("nonempty") and not value.strip():
            return f"{value!r} must not be empty{hint}"
        if "choices" in rules and value not in rules["choices"]:
            return f"{value!r} is not one of {', '.join(map(str, rules['choices']))}."
        if rules.get("names"):  # a comma-separated list of module names (they end up in a regex)
            names = [n.strip() for n in value.split(",") if n.strip()]
            bad = [n for n in names if not re.fullmatch(r"\w+", n)]
            if not names or bad:
                return f"{value!r} must be comma-separated module names like q_proj,v_proj{hint}"
        if rules.get("template"):
            from clip_lora.prompts import template_problem

            problem = template_problem(value)
            if problem:
                return f"{value!r} {problem}; use e.g. 'a photo of a {{}}.'"
        return None
    if isinstance(value, bool):
        choices = rules.get("choices", (True, False))
        return (
            None
            if value in choices
            else f"{str(value).lower()} is not supported here; leave it at its default."
        )
    if isinstance(value, float) and not math.isfinite(value) and not rules.get("allow_inf"):
        return f"{value} must be a finite number{hint}"
    if isinstance(value, (int, float)) and _out_of_range(value, rules):
        if isinstance(value, int) and rules.get("min") == 1 and set(rules) <= {"min", "example"}:
            return f"{value} must be a positive integer{hint.replace('; e.g.', ', e.g.')}"
        return f"{value} must be {_interval(rules)}{hint}"
    return None


def rules_for(field: dataclasses.Field, table: dict | None = None) -> dict:
    return {
        **(table or {}).get(field.name, {}),
        **{k: v for k, v in field.metadata.items() if k in RULE_KEYS},
    }


def check_fields(obj, table: dict | None = None) -> None:
    """Apply every field's rules (metadata, then `table`) to a dataclass instance; the first problem raises."""
    for field in dataclasses.fields(obj):
        if not field.init:
            continue
        default = field.default if field.default is not dataclasses.MISSING else None
        problem = field_problem(field.name, getattr(obj, field.name), rules_for(field, table), default)
        if problem:
            raise ArgumentError(f"--{field.name} {problem}")


def metric_names() -> list[str]:
    """The metrics an evaluation reports: what compute_metrics returns on a tiny example, plus Trainer's loss."""
    import numpy as np
    from transformers import EvalPrediction

    from metrics import compute_metrics

    example = EvalPrediction(predictions=np.eye(2), label_ids=np.array([0, 1]))
    return [*compute_metrics(example), "loss"]


def read_utf8(path: Path, what: str) -> str:
    """A file's text, or one ArgumentError line that says why it cannot be read (missing, a folder, not UTF-8)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ArgumentError(
            f"{what} {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
            "save it as UTF-8."
        ) from None
    except OSError as err:
        raise ArgumentError(f"cannot read {what} {path} ({err.strerror or err}); check the path.") from None


def _check_class_names_file(path: str) -> None:
    text = read_utf8(Path(path), "--class_names_file")
    try:
        mapping = json.loads(text)
    except ValueError as err:
        raise ArgumentError(f"--class_names_file {path} is not valid JSON ({err}); fix the file.") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ArgumentError(
            f"--class_names_file {path} must hold a JSON object {{folder: class name}} with string names."
        )


def _check_training_length(training_args) -> None:
    if not training_args.do_train:
        return
    if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        raise ArgumentError(
            f"--num_train_epochs {training_args.num_train_epochs} with --max_steps {training_args.max_steps} "
            "trains nothing; pass a positive --num_train_epochs (or --max_steps), or --do_train false to only evaluate."
        )


def _check_metric(training_args) -> None:
    metric = training_args.metric_for_best_model
    if metric is None:
        return
    known = metric_names()
    if metric.removeprefix("eval_") not in known:
        raise ArgumentError(
            f"--metric_for_best_model {metric!r} is not a metric the evaluation reports; use one of {', '.join(known)}."
        )


def _check_paths(model_args, data_args) -> None:
    for flag, value in (("--data_dir", data_args.data_dir), ("--cache_dir", model_args.cache_dir)):
        if value and Path(value).expanduser().is_file():
            raise ArgumentError(f"{flag} {value} is a file; pass a folder.")
    if data_args.robustness_eval_dir and not Path(data_args.robustness_eval_dir).expanduser().is_dir():
        raise ArgumentError(
            f"--robustness_eval_dir {data_args.robustness_eval_dir} is not a folder; pass a folder of <class>/<images>."
        )


def check_run(model_args, data_args, lora_args, training_args) -> None:
    """The checks that need several flags, a file or a library: all before any data or model is loaded."""
    from clip_lora import prompts
    from clip_lora.modeling import read_adapter_config

    _check_training_length(training_args)
    _check_metric(training_args)
    _check_paths(model_args, data_args)
    prompts.resolve_templates(data_args.prompt_templates, data_args.prompt_template)
    if data_args.class_names_file:
        _check_class_names_file(data_args.class_names_file)
    if model_args.adapter_name_or_path:
        read_adapter_config(model_args.adapter_name_or_path)


def library_error_line(err: Exception, argument_classes) -> str:
    """A library's exception while building the arguments -> one line naming the flags it mentions."""
    text = " ".join(str(err).split())
    first = (text or type(err).__name__)[:300]
    names = {f.name for cls in argument_classes for f in dataclasses.fields(cls)}
    mentioned = [n for n in sorted(names) if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?!\w)", text)]
    flags = ", ".join(f"--{n}" for n in mentioned) or "the training arguments"
    return f"{flags}: {first}; see `clip-lora train --help`."


def check_output_file(flag: str, path: str | Path) -> None:
    """An output file's location, before any work: its folder exists and is writable, and it is not a folder."""
    path = Path(path)
    problem = _text_problem(str(path))
    if problem:
        raise ArgumentError(f"{flag} {str(path)!r} {problem}.")
    if path.is_dir():
        raise ArgumentError(f"{flag} {path} is a folder; pass a file name.")
    parent = path.parent
    if not parent.is_dir():
        raise ArgumentError(
            f"{flag} {path}: the folder {parent} does not exist; create it or choose another path."
        )
    if not os.access(parent, os.W_OK):
        raise ArgumentError(f"{flag} {path}: the folder {parent} is not writable; choose another path.")


def check_output_folder(flag: str, path: str | Path) -> None:
    """A new output folder's location, before any work: not a file, not inside a file, creatable."""
    path = Path(path)
    problem = _text_problem(str(path))
    if problem:
        raise ArgumentError(f"{flag} {str(path)!r} {problem}.")
    if path.exists() and not path.is_dir():
        raise ArgumentError(f"{flag} {path} is a file; pass a folder.")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir():
        raise ArgumentError(f"{flag} {path}: {existing} is a file; choose another folder.")
    if not os.access(existing, os.W_OK):
        raise ArgumentError(f"{flag} {path}: {existing} is not writable; choose another folder.")
