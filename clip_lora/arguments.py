"""Command-line arguments: model, data and LoRA dataclasses, with the TrainingArguments subclass of
clip_lora/training_arguments.py, parsed together.

    python train_clip_lora.py --help                                # the project's flags, grouped (train_help.py)
    python train_clip_lora.py smoke --num_train_epochs 2   # a recipe, then overrides
    python train_clip_lora.py --config my.yaml --seed 1    # the same, trl's way

A single YAML/JSON file works instead of flags (HfArgumentParser's convention); flags after it override its values.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from clip_lora import train_help, validation
from clip_lora.errors import ArgumentError, ClipLoraError, OneLineParserMixin, unknown_arguments_line
from clip_lora.prompts import DEFAULT_TEMPLATE
from clip_lora.resources import recipe_argv
from clip_lora.training_arguments import (  # noqa: F401 - default_loader_workers re-exported
    ClipLoraTrainingArguments,
    default_loader_workers,
)

SEED_MODEL = "openai/clip-vit-base-patch16"
LORA_TOWERS = ("both", "vision", "text")
LOSSES = ("contrastive", "ce")
ON_BAD_IMAGE = ("skip", "error")
ON_LOST_IMAGES = ("stop", "continue")
PREPROCESSING = ("auto", "on_the_fly", "cached")  # = preprocessing.PREPROCESSING_MODES


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default=SEED_MODEL,
        metadata={"help": "CLIP checkpoint: a hub id or a local save_pretrained folder.", "nonempty": True},
    )
    adapter_name_or_path: str | None = field(
        default=None,
        metadata={"help": "An existing LoRA adapter (folder or hub id) to evaluate or continue training."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models are cached."})
    attn_implementation: str = field(
        default="sdpa",
        metadata={"help": "Attention kernel: sdpa (fused, default) or eager.", "choices": ("sdpa", "eager")},
    )

    def __post_init__(self):
        validation.check_fields(self)


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="imagenette",
        metadata={
            "help": "'imagenette', 'imagewoof', a local imagefolder path (train/<class>/, val/<class>/), or a hub dataset id.",
            "nonempty": True,
        },
    )
    # run_image_classification.py's names and meaning; used with a hub dataset (its columns are guessed by type
    # when not given: the Image column and the ClassLabel column).
    dataset_config_name: str | None = field(
        default=None,
        metadata={
            "help": "A hub dataset's configuration (load_dataset's second argument).",
            "nonempty": True,
        },
    )
    image_column_name: str | None = field(
        default=None,
        metadata={"help": "A hub dataset's image column (default: its Image column).", "nonempty": True},
    )
    label_column_name: str | None = field(
        default=None,
        metadata={
            "help": "A hub dataset's label column, a ClassLabel (default: its ClassLabel column).",
            "nonempty": True,
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where imagenette / imagewoof is (train/ and val/, or the extracted archive's folder in it); "
            "the archive is downloaded there when absent. Not given: ~/.cache/clip_lora/<dataset_name>. For a hub "
            "dataset: its datasets cache folder."
        },
    )
    imagenette_size: str = field(
        default="full",  # the seed's imagenette2 (full size); 320 / 160 are smaller, faster downloads
        metadata={
            "help": "Which fast.ai archive to download: full (the seed's imagenette2), 320 or 160 (shortest side, px).",
            "choices": ("full", "320", "160"),
        },
    )
    download: bool = field(
        default=True,
        metadata={
            "help": "true: download the fast.ai archive when --data_dir holds no data (false: that is an error)."
        },
    )
    on_bad_image: str = field(
        default="skip",
        metadata={
            "help": "Unreadable images found by the pre-training check: skip (listed in skipped_images.txt) or error.",
            "choices": ON_BAD_IMAGE,
        },
    )
    on_lost_images: str = field(
        default="stop",
        metadata={
            "help": "Images that become unreadable DURING training (after the check): stop (default) when a class "
            "loses every image or a split more than a tenth, resumable after the repair; continue: warn and train on "
            "what is left.",
            "choices": ON_LOST_IMAGES,
        },
    )
    dev_split_ratio: float = field(
        default=0.05,
        metadata={
            "help": "Fraction of train held out (stratified, seeded) to select the best epoch.",
            "gt": 0,
            "max": 0.5,
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Truncate train (debugging, smoke runs).", "min": 1, "example": 64}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Truncate dev and val (debugging).", "min": 1, "example": 64}
    )
    prompt_template: str = field(
        default=DEFAULT_TEMPLATE,
        metadata={"help": "Class prompt; '{}' is replaced by the class name.", "template": True},
    )
    class_names_file: str | None = field(
        default=None, metadata={"help": "JSON mapping folder name -> class name, for an imagefolder dataset."}
    )
    preprocessing: str = field(  # preprocessing.py; the measurements behind `auto` are in bench/RESULTS.md
        default="auto",
        metadata={
            "help": "on_the_fly (decode + resize every epoch), cached (resized once into the datasets cache as "
            "uint8, normalised in the collator) or auto (cached on a GPU, on_the_fly on CPU).",
            "choices": PREPROCESSING,
        },
    )
    # Issue 6: prompt ensembles, few-shot, streaming, WiSE-FT (logic in prompts.py, data.py, wise_ft.py).
    prompt_templates: str = field(
        default="single",
        metadata={
            "help": "single (--prompt_template), openai_imagenet (the CLIP paper's 80) or a file, one per line."
        },
    )
    shots_per_class: int | None = field(
        default=None,
        metadata={
            "help": "Train on K images per class (stratified, seeded; dev is carved first).",
            "min": 1,
            "example": 16,
        },
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream a hub dataset's train split (needs --max_steps); sharded per process."},
    )
    wise_alphas: str | None = field(
        default=None,
        metadata={"help": "WiSE-FT: comma-separated LoRA scales to evaluate after training, e.g. 0,0.5,1."},
    )
    robustness_eval_dir: str | None = field(
        default=None, metadata={"help": "A shifted eval folder (<class>/ or val/<class>/) for --wise_alphas."}
    )
    control_eval_dir: str | None = field(
        default=None,
        metadata={
            "help": "A control set of OTHER classes (<class>/ or val/<class>/, its folder names are its class "
            "names): scored zero-shot and fine-tuned (and per --wise_alphas) to show what fine-tuning cost "
            "outside the task."
        },
    )

    def __post_init__(self):
        validation.check_fields(self)  # every field's rule, from its metadata
        _ = self.wise_alpha_list  # a typo in --wise_alphas fails here, not after training

    @property
    def wise_alpha_list(self) -> list[float]:
        return validation.wise_alphas(self.wise_alphas)


@dataclass
class LoraArguments:
    lora_r: int = field(default=16, metadata={"help": "LoRA rank.", "min": 1})
    lora_alpha: float = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r).", "gt": 0})
    lora_dropout: float = field(
        default=0.1, metadata={"help": "Dropout on the LoRA input.", "min": 0.0, "lt": 1.0}
    )
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,out_proj",
        metadata={"help": "Comma-separated module names to adapt.", "names": True},
    )
    lora_towers: str = field(
        default="both",
        metadata={"help": "Which towers get LoRA: both, vision or text.", "choices": LORA_TOWERS},
    )
    loss: str = field(
        default="contrastive",
        metadata={
            "help": "contrastive (image<->class prompts, same-class images never negatives) or ce.",
            "choices": LOSSES,
        },
    )

    def __post_init__(self):
        validation.check_fields(self)

    @property
    def target_module_list(self) -> list[str]:
        return [name.strip() for name in self.lora_target_modules.split(",") if name.strip()]


ARGUMENT_CLASSES = (ModelArguments, DataArguments, LoraArguments, ClipLoraTrainingArguments)


class OneLineHfParser(OneLineParserMixin, HfArgumentParser):
    """A bad flag value (wrong type, bad choice) is one `error:` line, not argparse's usage + message; --help is
    grouped (clip_lora/train_help.py).

    HfArgumentParser hands field metadata to argparse as keywords; the validity rules in it are ours
    (clip_lora.validation), so argparse sees the rest only."""

    def format_help(self) -> str:
        return train_help.help_text(self, "train")

    @staticmethod
    def _parse_dataclass_field(parser, field):
        argparse_field = copy.copy(field)
        argparse_field.metadata = {k: v for k, v in field.metadata.items() if k not in validation.RULE_KEYS}
        HfArgumentParser._parse_dataclass_field(parser, argparse_field)


def field_names(classes=ARGUMENT_CLASSES) -> set[str]:
    return {f.name for cls in classes for f in dataclasses.fields(cls) if f.init}


def build_parser() -> OneLineHfParser:
    # Exact flag names only: with argparse's prefix matching, `--learning_rat` (or a recipe's `learning_rat:`)
    # would silently set --learning_rate.
    parser = OneLineHfParser(ARGUMENT_CLASSES, prog="clip-lora train", allow_abbrev=False)
    parser.add_argument("--help-all", action=train_help.HelpAllAction, help="Also Trainer's other flags.")
    train_help.reword(parser)
    return parser


def parse_args(argv: list[str] | None = None):
    """Parse flags (or one recipe file followed by flags) into the four argument dataclasses."""
    argv = recipe_argv(list(sys.argv[1:] if argv is None else argv), field_names())
    parser = build_parser()
    try:
        model_args, data_args, lora_args, training_args, unknown = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True
        )
    except ClipLoraError:
        raise
    except (ValueError, TypeError, KeyError, ImportError, OSError) as err:  # TrainingArguments' own checks
        raise ArgumentError(validation.library_error_line(err, ARGUMENT_CLASSES)) from None
    if unknown:
        raise ArgumentError(unknown_arguments_line(unknown, parser))
    validation.check_run(model_args, data_args, lora_args, training_args)
    return model_args, data_args, lora_args, training_args
