"""The onnx side of predict's and export's flags, torch-free: is the extra installed, can the graph serve these
inputs, does predict serve with it by default. clip_lora/verb_args.py checks them with the other flags."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from clip_lora.errors import MissingExtraError, PredictError

# onnx_export's ONNX_DIR and FP32_FILE are derived from it (that module imports torch).
ONNX_MODEL = "onnx/model.onnx"
ONNX_CHOICES = ("fp32", "int8", "off")
ONNX_INSTALL = "pip install 'clip-lora[onnx]'"
# `clip-lora export --format`: the merged CLIPModel is always written; onnx adds onnx/ (an alias of --onnx, the
# spelling of exporters such as `optimum-cli export onnx` and torch.onnx's "format").
EXPORT_FORMATS = ("merged", "onnx")


def require_onnx(flag: str, packages: tuple[str, ...] = ("onnx", "onnxruntime")) -> None:
    """One line naming the install when the onnx extra is missing (found without importing anything)."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"{flag} needs {' and '.join(missing)}: {ONNX_INSTALL}.")


def onnx_problem(args: argparse.Namespace) -> None:
    """`--onnx fp32|int8` asked for: refused with one line when the inputs cannot be served by the graph."""
    model = args.model_name_or_path
    if args.adapter_name_or_path or not model or not (Path(model) / ONNX_MODEL).is_file():
        raise PredictError(
            f"--onnx {args.onnx} needs --model_name_or_path EXPORT_DIR holding {ONNX_MODEL} "
            "(clip-lora export --onnx); no --adapter_name_or_path."
        )
    fixed = [flag for flag in ("labels", "prompt_template", "no_temperature") if getattr(args, flag, None)]
    if fixed:
        raise PredictError(
            f"--{fixed[0]} cannot change an onnx graph (its classes, prompts and temperature are fixed at export); "
            "pass --onnx off to score with the merged torch model."
        )
    if args.device not in (None, "cpu"):
        raise PredictError(f"--onnx {args.onnx} runs on the cpu; pass --onnx off for --device {args.device}.")
    require_onnx(f"--onnx {args.onnx}", ("onnxruntime",))


def uses_onnx(args: argparse.Namespace) -> bool:
    """Whether predict serves with the onnx graph: asked for, or by default when the export has one and nothing
    asks for torch (an adapter, new labels or prompts, a GPU) and onnxruntime is installed."""
    if args.onnx in ("fp32", "int8"):
        return True
    model = args.model_name_or_path
    return (
        args.onnx is None
        and bool(model)
        and not (args.adapter_name_or_path or args.labels or args.prompt_template or args.no_temperature)
        and args.device in (None, "cpu")
        and (Path(model) / ONNX_MODEL).is_file()
        and importlib.util.find_spec("onnxruntime") is not None
    )
