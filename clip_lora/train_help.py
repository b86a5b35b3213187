"""`clip-lora train --help` as a person reads it: this project's flags first, grouped by what a user changes, then
(with --help-all) Trainer's other flags under their own heading; `clip-lora eval --help` lists what eval uses.

    help_text(parser, "train")      # the grouped project flags; "all": and Trainer's others; "eval": eval's view

The text is laid out from the real parser (arguments.build_parser): each flag once (not also as --data-dir), a
default shown only where the parsed default is that value (a default derived at run time is said in words), and
each `--no_X` as what it is: `--X false`. flag_schema.py stores the three views, so --help is answered before torch.
"""

from __future__ import annotations

import argparse
import textwrap

from clip_lora.resources import RECIPES_DIR, names

# Title -> the flags in it, in reading order. A flag not listed here is one of Trainer's others (--help-all).
GROUPS = {
    "data": (
        "dataset_name",
        "dataset_config_name",
        "image_column_name",
        "label_column_name",
        "data_dir",
        "imagenette_size",
        "download",
        "class_names_file",
        "dev_split_ratio",
        "max_train_samples",
        "max_eval_samples",
        "shots_per_class",
        "on_bad_image",
        "on_lost_images",
        "preprocessing",
        "streaming",
    ),
    "model and LoRA": (
        "model_name_or_path",
        "adapter_name_or_path",
        "cache_dir",
        "attn_implementation",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        "lora_towers",
        "loss",
        "prompt_template",
        "prompt_templates",
    ),
    "batch and schedule": (
        "global_batch_size",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "per_device_eval_batch_size",
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "warmup_steps",
        "lr_scheduler_type",
        "weight_decay",
        "max_grad_norm",
        "seed",
        "bf16",
        "fp16",
        "use_cpu",
        "dataloader_num_workers",
        "dataloader_persistent_workers",
    ),
    "evaluation and reports": (
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "do_train",
        "do_eval",
        "eval_strategy",
        "save_strategy",
        "save_total_limit",
        "load_best_model_at_end",
        "metric_for_best_model",
        "greater_is_better",
        "logging_steps",
        "logging_nan_inf_filter",
        "wise_alphas",
        "robustness_eval_dir",
        "control_eval_dir",
    ),
    "Hub and tracking": ("push_to_hub", "hub_model_id", "hub_private_repo", "report_to", "run_name"),
}
TRAINER_TITLE = "Trainer's other flags (transformers.TrainingArguments; their defaults are Trainer's)"
# What `clip-lora eval` (= train --do_train false) reads: no LoRA shape, optimizer, schedule or checkpointing.
EVAL_FLAGS = {
    *GROUPS["data"],
    *GROUPS["model and LoRA"][:4],
    "prompt_template",
    "prompt_templates",
    "per_device_eval_batch_size",
    "seed",
    "use_cpu",
    "bf16",
    "fp16",
    "dataloader_num_workers",
    "output_dir",
    "overwrite_output_dir",
    "control_eval_dir",
    *GROUPS["Hub and tracking"],
} - {"dev_split_ratio", "max_train_samples", "shots_per_class", "streaming"}
VIEWS = ("train", "all", "eval")
WIDTH = (
    100  # the description's paragraphs (argparse lays out the flags at $COLUMNS: flag_schema.HELP_COLUMNS)
)


def usage(prog: str) -> str:
    recipes = " | ".join(names(RECIPES_DIR))
    return f"{prog} [RECIPE | --config FILE.yaml] [--flag value ...]\n       RECIPE: {recipes} | FILE.yaml"


def description(view: str) -> str:
    recipes = ", ".join(names(RECIPES_DIR))
    what = (
        "Evaluate a base CLIP zero-shot, or an adapter (--adapter_name_or_path), on val: `clip-lora train "
        "--do_train false`."
        if view == "eval"
        else "Zero-shot baseline -> LoRA fine-tuning (best epoch on a dev split) -> val evaluation -> report, card."
    )
    recipe = (
        f"RECIPE: a packaged recipe ({recipes}) or a .yaml/.json file of flag: value (trl's --config FILE is the "
        "same); flags given after it override its values. `clip-lora config` lists the recipes."
    )
    return "\n\n".join(textwrap.fill(text, WIDTH) for text in (what, recipe))


def epilog(view: str) -> str:
    if view == "all":
        return ""
    return textwrap.fill(
        "Trainer's ~150 other flags (transformers.TrainingArguments) all work too: `clip-lora train --help-all`.",
        WIDTH,
        break_on_hyphens=False,
    )


class GroupedFormatter(argparse.RawDescriptionHelpFormatter):
    """One spelling per flag; `[true|false]` for a boolean; `(default: X)` only where X is a default to show."""

    def _format_action_invocation(self, action):
        text = super()._format_action_invocation(action)  # "--data_dir DATA_DIR, --data-dir DATA_DIR"
        if not action.option_strings:
            return text
        kept = [
            part for part in text.split(", ") if not _dashed_alias(part.split()[0], action.option_strings)
        ]
        if action.const is True and action.nargs == "?":  # HfArgumentParser's booleans: --flag [true|false]
            return f"{kept[0].split()[0]} [true|false]"
        return ", ".join(kept)

    def _get_help_string(self, action):
        text = action.help or ""
        default = shown_default(action)
        return f"{text} (default: {default.replace('%', '%%')})" if default is not None else text


def _dashed_alias(spelling: str, spellings: list[str]) -> bool:
    """HfArgumentParser's --data-dir beside --data_dir: the same flag, listed once."""
    return "-" in spelling[2:] and f"--{spelling[2:].replace('-', '_')}" in spellings


def shown_default(action) -> str | None:
    """The default the help states: None where it shows none (no value, a `--no_X` twin, a help flag)."""
    if action.default in (None, argparse.SUPPRESS) or isinstance(action, argparse._StoreFalseAction):
        return None
    if action.dest in MACHINE_DEFAULTS:
        return None
    if isinstance(action.default, bool):
        return str(action.default).lower()
    if isinstance(action.default, (list, tuple)):
        return " ".join(map(str, action.default)) or None  # an empty list: no value to state
    return str(getattr(action.default, "value", action.default))


# Trainer's help where this project does otherwise, or where the default depends on the machine (then said in words,
# so the help never states a default the parse does not give).
TRAINER_HELP = {
    "push_to_hub": "true: once the run has finished, push the selected adapter, its card, results and plots to "
    "--hub_model_id (never checkpoints or optimizer state).",
    "dataloader_pin_memory": "true: pinned loader memory, for faster copies to a GPU (default: true on a GPU, "
    "false without one).",
}
MACHINE_DEFAULTS = {"dataloader_pin_memory"}  # resolved at parse time (training_arguments.py)


def reword(parser: argparse.ArgumentParser) -> None:
    """The help texts of `parser` that HfArgumentParser or Trainer word wrongly for this project."""
    for action in parser._actions:
        if isinstance(action, argparse._StoreFalseAction):  # --no_X: HfArgumentParser gave it --X's own help
            action.help = f"Same as --{action.dest} false."
        elif action.dest in TRAINER_HELP:
            action.help = TRAINER_HELP[action.dest]


def help_text(parser: argparse.ArgumentParser, view: str = "train") -> str:
    """The help of `parser` (arguments.build_parser) in one of VIEWS."""
    prog = "clip-lora eval" if view == "eval" else parser.prog
    out = argparse.ArgumentParser(
        prog=prog,
        usage=usage(prog),
        description=description(view),
        epilog=epilog(view),
        formatter_class=GroupedFormatter,
        add_help=False,
    )
    by_dest: dict[str, list] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        by_dest.setdefault(action.dest, []).append(action)
    helps = out.add_argument_group("help")
    helps.add_argument("-h", "--help", action="store_true", default=argparse.SUPPRESS, help="This help.")
    if view != "all":
        helps.add_argument(
            "--help-all", action="store_true", default=argparse.SUPPRESS, help="Also Trainer's other flags."
        )
    listed = set()
    for title, dests in GROUPS.items():
        shown = [d for d in dests if d in by_dest and (view != "eval" or d in EVAL_FLAGS)]
        group = out.add_argument_group(title)
        for dest in shown:
            for action in by_dest[dest]:
                group._add_action(action)
        listed.update(dests)
    if view == "all":
        trainer = out.add_argument_group(TRAINER_TITLE)
        for dest, actions in by_dest.items():
            if dest not in listed:
                for action in actions:
                    trainer._add_action(action)
    return out.format_help()


class HelpAllAction(argparse._HelpAction):
    """--help-all on the full parser (without a packaged description): every flag, Trainer's included."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(help_text(parser, "all"), end="")
        parser.exit()
