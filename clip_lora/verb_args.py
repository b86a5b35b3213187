"""Every verb's flags, parsed and checked before anything heavy is imported.

    answered = precheck("predict", argv)    # True: --help was printed; ArgumentError: a mistake; False: go on

`clip_lora.cli.run` calls `precheck` before it imports the verb's module (torch, transformers, peft, datasets take
5-20 s to import here): a mistyped flag, a bad value, a missing file or folder, duplicate --labels and --help are
answered at once. Each verb's `main` parses with the same parser again (cheap), so the two can never disagree.
`train` and `eval` use the packaged description of their parser (clip_lora/flag_schema.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clip_lora import artifacts, flag_schema, sources, validation
from clip_lora.adapters import base_model_for, read_adapter_config
from clip_lora.class_names import canonical, normalise
from clip_lora.errors import ArgumentError, ClassNameError, ModelError, Parser, PredictError, RunError
from clip_lora.onnx_flags import EXPORT_FORMATS, ONNX_CHOICES, ONNX_INSTALL, onnx_problem, require_onnx
from clip_lora.prompts import template_problem

SEED_MODEL = "openai/clip-vit-base-patch16"  # = arguments.SEED_MODEL (that module imports torch)
NONEMPTY_FLAGS = ("labels", "prompt_template", "model_name_or_path", "adapter_name_or_path", "device")


def eval_argv(argv: list[str]) -> list[str]:
    """`clip-lora eval [recipe] flags` = `clip-lora train [recipe] --do_train false flags` (a flag may override)."""
    recipe = argv[:1] if argv and not argv[0].startswith("-") else []
    return [*recipe, "--do_train", "false", *argv[len(recipe) :]]


def label_list(labels: str | None, where: str = "--labels") -> list[str] | None:
    """--labels "cat,dog" -> ["cat", "dog"] through the class-name layer (canonical form, two or more, no
    duplicates); a blank label (`' ,dog'`, `cat,,dog`, a trailing comma) is named, never dropped: a list that
    lost a name would shift every class after it."""
    if labels is None:
        return None
    parts = labels.split(",")
    blank = [i for i, part in enumerate(parts, 1) if not canonical(part)]
    if blank:
        which = ", ".join(f"#{i} ({ascii(parts[i - 1])})" for i in blank)
        raise ClassNameError(
            f"{where} {labels!r}: label{'s' if len(blank) > 1 else ''} {which} of {len(parts)} "
            f"{'are' if len(blank) > 1 else 'is'} blank; give every class a name, separated by single commas."
        )
    return normalise(parts, where=f"{where} {labels!r}")


def _check_model_and_adapter(model: str | None, adapter: str | None, error=ModelError) -> None:
    """The local parts of --model_name_or_path / --adapter_name_or_path (a Hub id is judged when it loads)."""
    if model:
        sources.resolve(model, "--model_name_or_path", error=error)
    if adapter:
        read_adapter_config(adapter, local_only=True)
        if sources.looks_local(
            adapter
        ):  # its recorded base is read without torch: refused now if there is none
            base_model_for(adapter, model)


# ---------------------------------------------------------------- predict
def predict_parser() -> Parser:
    parser = Parser(
        prog="clip-lora predict",
        description="Classify image files and folders with a run's adapter, or zero-shot with a base CLIP.",
    )
    parser.add_argument("inputs", nargs="+", help="Image files and/or folders (searched recursively).")
    parser.add_argument("--adapter_name_or_path", help="A run's output_dir or a pushed adapter's hub id.")
    parser.add_argument(
        "--model_name_or_path",
        help=f"Base CLIP (default: the adapter's base; without an adapter {SEED_MODEL}).",
    )
    parser.add_argument(
        "--labels", help='Comma-separated class names, e.g. "cat,dog" (replaces the card\'s).'
    )
    parser.add_argument("--prompt_template", help="Replaces the card's templates, e.g. 'a photo of a {}.'.")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--output", help="Write predictions to a .csv or .json file instead of printing a table."
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda", "mps"), help="Default: cuda when available, else cpu."
    )
    parser.add_argument(
        "--no_temperature",
        action="store_true",
        help="Plain softmax: ignore the temperature the run fitted on dev (temperature.json); same top-1. "
        "An onnx graph has it built in: this flag scores with the merged torch model instead.",
    )
    parser.add_argument(
        "--onnx",
        choices=ONNX_CHOICES,
        help="An export with onnx/ (clip-lora export --onnx): which graph serves (default fp32; off = torch).",
    )
    return parser


def predict_args(argv: list[str] | None) -> argparse.Namespace:
    parser = predict_parser()
    args = parser.parse_args(argv)
    for flag in ("top_k", "batch_size"):  # the same rule and message as every training flag
        problem = validation.field_problem(flag, getattr(args, flag), {"min": 1}, parser.get_default(flag))
        if problem:
            raise PredictError(f"--{flag} {problem}")
    for flag in NONEMPTY_FLAGS:
        problem = validation.field_problem(flag, getattr(args, flag), {"nonempty": True})
        if problem:
            raise PredictError(f"--{flag} {problem}")
    if args.prompt_template:
        problem = template_problem(args.prompt_template)
        if problem:
            raise PredictError(f"--prompt_template {args.prompt_template!r} {problem}.")
    if args.output:
        if Path(args.output).suffix not in (".csv", ".json"):
            raise PredictError(f"--output {args.output} must end in .csv or .json.")
        validation.check_output_file("--output", args.output)  # before the model loads and inference runs
    label_list(args.labels)
    missing = next((item for item in args.inputs if not Path(item).exists()), None)
    if missing is not None:
        raise PredictError(f"{missing} does not exist; pass image files or folders.")
    _check_model_and_adapter(args.model_name_or_path, args.adapter_name_or_path)
    if args.onnx in ("fp32", "int8"):
        onnx_problem(args)
    return args


# ---------------------------------------------------------------- export
def export_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="clip-lora export", description="Merge an adapter into a standalone CLIPModel (no peft needed)."
    )
    parser.add_argument(
        "--adapter_name_or_path", required=True, help="A run's output_dir or a pushed adapter's id."
    )
    parser.add_argument("--output_dir", required=True, help="A new folder for the merged CLIPModel.")
    parser.add_argument("--model_name_or_path", help="Base CLIP (default: the one the adapter records).")
    parser.add_argument(
        "--with_text_embeddings",
        action="store_true",
        help="Also write class_embeddings.safetensors: class embeddings, so inference needs no text tower.",
    )
    parser.add_argument("--labels", help="Comma-separated class names (default: the adapter card's).")
    parser.add_argument("--prompt_template", help="One template with '{}' (default: the adapter card's).")
    parser.add_argument(
        "--onnx",
        action="store_true",
        help=f"Also write onnx/: the classifier as one onnx graph, fp32 and int8, checked ({ONNX_INSTALL}).",
    )
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        help="merged: the merged CLIPModel only (the default); onnx: the same as --onnx.",
    )
    args = parser.parse_args(argv)
    if args.format == "merged" and args.onnx:
        raise ArgumentError("--format merged and --onnx disagree; pass one of them (--format onnx = --onnx).")
    args.onnx = args.onnx or args.format == "onnx"
    if args.onnx:
        require_onnx("--onnx")
    if args.prompt_template and template_problem(args.prompt_template):
        raise ModelError(
            f"--prompt_template {args.prompt_template!r} {template_problem(args.prompt_template)}."
        )
    label_list(args.labels)
    check_export_folder(args.output_dir)
    _check_model_and_adapter(args.model_name_or_path, args.adapter_name_or_path)
    return args


def check_export_folder(output_dir: str | Path) -> None:
    out = Path(output_dir)
    validation.check_output_folder("--output_dir", out)
    if out.is_dir() and any(out.iterdir()):
        raise ModelError(f"--output_dir {out} is not empty; choose a new folder for the merged model.")


# ---------------------------------------------------------------- app
def app_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="clip-lora app", description="A local page with a run's results.")
    parser.add_argument("run", metavar="OUTPUT_DIR_OR_HUB_ID", help="A run's output_dir or a pushed adapter.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to serve on (default: this machine only)."
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--data_dir", help="Where the run's val images are (default: from run_config.json).")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available).")
    args = parser.parse_args(argv)
    sources.resolve(args.run, "clip-lora app", what="run folder", error=ModelError)
    if args.data_dir:
        sources.resolve(args.data_dir, "--data_dir", error=ModelError)
    return args


# ---------------------------------------------------------------- sweep
def sweep_parser() -> Parser:
    parser = Parser(
        prog="clip-lora sweep",
        description="The same run over several seeds, with mean/std and McNemar tests; other flags go to training.",
    )
    parser.add_argument(
        "--seeds", help="comma-separated seeds, e.g. 0,1,2; the other flags go to train_clip_lora"
    )
    parser.add_argument("--summarize", metavar="SWEEP_DIR", help="only rebuild the summary from seed folders")
    parser.add_argument("--readme", metavar="SUMMARY_JSON", help="only rewrite the README results block")
    parser.add_argument("--readme_path", default="README.md")
    parser.add_argument(
        "--allow_local_results",
        action="store_true",
        help="--readme: also write the numbers of a run on a local model or local data (a smoke or demo run); "
        "the block then says so. Without it such a summary is refused.",
    )
    return parser


def seed_list(text: str | None) -> list[int]:
    try:
        seeds = [int(s) for s in (text or "").split(",") if s.strip()]
    except ValueError:
        seeds = []
    problem = next(
        (p for s in seeds if (p := validation.field_problem("seed", s, validation.SEED_RULE))), None
    )
    if not seeds or problem or len(set(seeds)) != len(seeds):
        raise ArgumentError(
            f"--seeds {text!r} must be distinct comma-separated integers in [0, {validation.SEED_RULE['max']}], "
            "e.g. 0,1,2."
        )
    return seeds


def sweep_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = sweep_parser()
    args, train_argv = parser.parse_known_args(argv)
    if args.readme:
        for flag, value in (("--readme", args.readme), ("--readme_path", args.readme_path)):
            if not Path(value).is_file():
                raise ArgumentError(sources.missing_path_line(flag, value, "file"))
    elif args.summarize:
        if not Path(args.summarize).is_dir():
            raise ArgumentError(sources.missing_path_line("--summarize", args.summarize))
    elif not args.seeds:
        parser.error("--seeds is required, e.g. --seeds 0,1,2")
    else:
        seed_list(args.seeds)
    return args, train_argv


# ---------------------------------------------------------------- compare
def compare_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="clip-lora compare", description="Two runs side by side: flags, data, versions, McNemar."
    )
    parser.add_argument("run_a", help="a run's output folder")
    parser.add_argument("run_b", help="another run's output folder")
    args = parser.parse_args(argv)
    for folder in (args.run_a, args.run_b):
        check_run_folder(folder)
    return args


def check_run_folder(folder: str | Path) -> None:
    """A folder `clip-lora compare` can read: it exists, is a folder and holds a finished run's files."""
    path = Path(folder)
    shown = artifacts.escape_path(path)
    if path.is_file():
        raise RunError(f"run folder {shown} is a file; pass the --output_dir (a folder) of a clip-lora run.")
    if not path.is_dir():
        raise RunError(
            f"run folder {shown} does not exist (pass the --output_dir of a clip-lora run); "
            + sources.missing_path_hint(str(folder))
        )
    # a folder in a file's place is named by the reader (run_files): "is a folder, not a JSON file"
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


# ---------------------------------------------------------------- the table cli.run uses
def _plain(parse):
    def check(argv: list[str]) -> bool:
        parse(argv)
        return False

    return check


def _sweep(argv: list[str]) -> bool:
    args, train_argv = sweep_args(argv)
    return bool(args.seeds) and not (args.readme or args.summarize) and flag_schema.precheck(train_argv)


PRECHECKS = {
    "train": lambda argv: flag_schema.precheck(argv, "clip-lora train"),
    "eval": lambda argv: flag_schema.precheck(eval_argv(argv), "clip-lora eval"),
    "predict": _plain(predict_args),
    "export": _plain(export_args),
    "app": _plain(app_args),
    "sweep": _sweep,
    "compare": _plain(compare_args),
}


def precheck(verb: str, argv: list[str]) -> bool:
    """True when the command is already answered (its --help printed); raises ArgumentError-like one-liners."""
    check = PRECHECKS.get(verb)
    if check is None:
        return False
    try:
        return check(list(argv))
    except SystemExit as done:  # argparse's own --help (the verbs with argparse parsers) prints and exits 0
        if done.code in (0, None):
            return True
        raise
