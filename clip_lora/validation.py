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
import functools
import json
import math
import re
from pathlib import Path

from clip_lora import resume, sources
from clip_lora.errors import ArgumentError, DataError
from clip_lora.sources import check_output_file, check_output_folder  # noqa: F401 - re-exported
from clip_lora.sources import text_problem as _text_problem

# Rules for TrainingArguments' own fields (the ones ClipLoraTrainingArguments redefines carry them in metadata).
# This module is imported before torch and transformers (the CLI checks flags first): `report_to`'s choices, which
# come from transformers, are added by training_rules() when the full rules are needed.
_TRAINING_RULES: dict[str, dict] = {
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
}


@functools.cache
def training_rules() -> dict[str, dict]:
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return {**_TRAINING_RULES, "report_to": {"choices": ("all", "none", *INTEGRATION_TO_CALLBACK)}}


def __getattr__(name: str):  # validation.TRAINING_RULES: the full table, built on first use
    if name == "TRAINING_RULES":
        return training_rules()
    raise AttributeError(name)


# The metadata keys that are rules (HfArgumentParser must not pass them to argparse).
RULE_KEYS = frozenset(
    {"min", "gt", "max", "lt", "choices", "nonempty", "names", "template", "allow_inf", "example"}
)
FASTAI_NAMES = (
    "imagenette",
    "imagewoof",
)  # = data.FASTAI_DATASETS: downloaded archives, not paths or Hub ids
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


def _check_metric(training_args, known: list[str] | None = None) -> None:
    metric = training_args.metric_for_best_model
    if metric is None:
        return
    known = known or metric_names()
    if metric.removeprefix("eval_") not in known:
        raise ArgumentError(
            f"--metric_for_best_model {metric!r} is not a metric the evaluation reports; use one of {', '.join(known)}."
        )


def wise_alphas(text: str | None) -> list[float]:
    """--wise_alphas '0,0.5,1' -> [0.0, 0.5, 1.0]; anything else is one ArgumentError line."""
    try:
        alphas = [float(a) for a in (text or "").split(",") if a.strip()]
        if not all(map(math.isfinite, alphas)):
            raise ValueError("not finite")
        return alphas
    except ValueError:
        raise ArgumentError(f"--wise_alphas {text!r} must be numbers, e.g. 0,0.25,0.5,0.75,1") from None


def _check_paths(model_args, data_args) -> None:
    from clip_lora.errors import ModelError

    for flag, value in (("--data_dir", data_args.data_dir), ("--cache_dir", model_args.cache_dir)):
        if value and Path(value).expanduser().is_file():
            raise ArgumentError(f"{flag} {value} is a file; pass a folder.")
    for flag in ("robustness_eval_dir", "control_eval_dir"):
        value = getattr(data_args, flag)
        if value and not Path(value).expanduser().is_dir():
            raise ArgumentError(f"--{flag} {value} is not a folder; pass a folder of <class>/<images>.")
    # A local path that does not exist is one line now, not a Hub error (or a traceback) after the data is loaded.
    model = sources.resolve(model_args.model_name_or_path, "--model_name_or_path", error=ModelError)
    if isinstance(model, Path) and not model.is_dir():
        raise ModelError(
            f"--model_name_or_path {model} is a file; pass a folder written by save_pretrained or a Hub id."
        )
    if data_args.dataset_name.lower() not in FASTAI_NAMES:
        dataset = sources.resolve(data_args.dataset_name, "--dataset_name", error=DataError)
        if isinstance(dataset, Path) and not dataset.is_dir():
            raise DataError(
                f"--dataset_name {dataset} is a file; pass a folder holding train/<class>/ and val/<class>/."
            )


# Flags of a hub dataset (run_image_classification.py's); a folder's columns are always `image` and `label`.
HUB_DATASET_FLAGS = {"dataset_config_name": None, "image_column_name": "image", "label_column_name": "label"}


def _check_hub_only_flags(data_args) -> None:
    name = data_args.dataset_name
    if name.lower() not in FASTAI_NAMES and not sources.looks_local(name):
        return  # a hub dataset: its columns are checked when it loads (data.image_label_columns)
    for flag, folder_value in HUB_DATASET_FLAGS.items():
        value = getattr(data_args, flag, None)
        if value is not None and value != folder_value:
            raise ArgumentError(
                f"--{flag} {value} applies to a hub dataset; --dataset_name {name} is a folder of "
                "<class>/<images> (columns image and label): drop it."
            )


def _check_adapter(model_args, training_args, quick: bool) -> None:
    from clip_lora.adapters import read_adapter_config

    adapter = model_args.adapter_name_or_path
    read_adapter_config(adapter, local_only=quick)
    here = Path(adapter).expanduser()
    if training_args.overwrite_output_dir and here.is_dir():
        out = Path(training_args.output_dir).expanduser().resolve()
        if out == here.resolve() or out in here.resolve().parents:
            raise ArgumentError(
                f"--overwrite_output_dir would delete the adapter it loads ({adapter} is inside --output_dir "
                f"{training_args.output_dir}); choose another --output_dir."
            )


def check_run(model_args, data_args, lora_args, training_args, metrics: list[str] | None = None) -> None:
    """The checks that need several flags, a file or a library: all before any data or model is loaded.
    `metrics` given: the quick check the CLI runs before torch is imported (a Hub adapter is not fetched)."""
    from clip_lora import input_checks, prompts

    _check_training_length(training_args)
    _check_metric(training_args, metrics)
    _check_paths(model_args, data_args)
    input_checks.check_output_dir(training_args)
    input_checks.check_data(data_args)
    _check_hub_only_flags(data_args)
    resume.check_flag(training_args)
    wise_alphas(data_args.wise_alphas)
    prompts.resolve_templates(data_args.prompt_templates, data_args.prompt_template)
    if data_args.class_names_file:
        _check_class_names_file(data_args.class_names_file)
    if model_args.adapter_name_or_path:
        _check_adapter(model_args, training_args, quick=metrics is not None)


def library_error_line(err: Exception, argument_classes) -> str:
    """A library's exception while building the arguments -> one line naming the flags it mentions."""
    text = " ".join(str(err).split())
    first = (text or type(err).__name__)[:300]
    names = {f.name for cls in argument_classes for f in dataclasses.fields(cls)}
    mentioned = [n for n in sorted(names) if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?!\w)", text)]
    flags = ", ".join(f"--{n}" for n in mentioned) or "the training arguments"
    return f"{flags}: {first}; see `clip-lora train --help`."
