"""Which names of other libraries the shipped code uses that are not their public API.

    python tests/library_internals_scan.py      # print what the code uses today, one name a line

tests/test_library_internals.py compares this with docs/library_internals.md, the one list of them. Three kinds,
each found mechanically (no list of examples):
- an import from a library's submodule of a name its top level does not export (`transformers.masking_utils.
  create_causal_mask`), or from any module with a private segment (`torch.utils._python_dispatch.X`);
- an underscored attribute the project never defines itself (`trainer._train_batch_size`, `getattr(m, "_orig_mod")`,
  `obj.__dict__.pop("_is_accelerate_prepared")`), read, written or named as a string argument;
- a method or class attribute of a library class that one of our classes overrides (`Trainer._save_checkpoint`,
  `Trainer.compute_loss`, `HfArgumentParser._parse_dataclass_field`, `Trainer.loss_is_scaled_for_ga`), or whose
  presence a `hasattr(LibraryClass, "name")` gate tests: a rename upstream silently bypasses an override. TrainerCallback's
  `on_*` hooks and torch's extension classes (Dataset, Sampler, autograd.Function, ...) are the documented way to
  subclass and are not counted.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A name imported from one of these libraries' submodules counts when their top level does not export it.
# safetensors is not among them: safetensors.torch is where it documents its torch API.
HF_LIBRARIES = ("transformers", "peft", "accelerate", "datasets", "evaluate", "huggingface_hub")
LIBRARIES = (*HF_LIBRARIES, "torch", "safetensors")
# Shipped code: the package, the top-level modules, and bench/ (bench/gpu_check.sh runs it on the GPU machine).
IMPORTABLE = ("clip_lora", "train_clip_lora", "collator", "metrics")


def source_files() -> list[Path]:
    return sorted([*ROOT.glob("clip_lora/*.py"), *ROOT.glob("*.py"), *ROOT.glob("bench/*.py")])


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _top_level_exports(library: str, name: str) -> bool:
    return hasattr(importlib.import_module(library), name)


def imported_internals(trees: dict[Path, ast.AST]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                library, *rest = node.module.split(".")
                if library not in LIBRARIES:
                    continue
                for alias in node.names:
                    private_path = any(_is_private(part) for part in (*rest, alias.name))
                    hidden = library in HF_LIBRARIES and rest and not _top_level_exports(library, alias.name)
                    if private_path or hidden:
                        found.setdefault(f"{node.module}.{alias.name}", set()).add(path.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    library, *rest = alias.name.split(".")
                    if library in LIBRARIES and any(_is_private(part) for part in rest):
                        found.setdefault(alias.name, set()).add(path.name)
    return found


def _defined_names(trees: dict[Path, ast.AST]) -> set[str]:
    """Every name the project itself gives a meaning: functions, classes, assigned names and attributes."""
    names = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
            elif _call_name(node) in (
                "setattr",
                "setdefault",
            ):  # setattr(obj, "_x", v), obj.__dict__.setdefault
                names.update(_string_arguments(node))
    return names


NAMED_ATTRIBUTE_CALLS = ("getattr", "hasattr", "setattr", "delattr", "pop", "get", "setdefault")


def _call_name(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)


def _string_arguments(node: ast.Call) -> list[str]:
    return [
        arg.value
        for arg in node.args
        if isinstance(arg, ast.Constant)
        and isinstance(arg.value, str)
        and _is_private(arg.value)
        and arg.value.isidentifier()
    ]


def attribute_internals(trees: dict[Path, ast.AST]) -> dict[str, set[str]]:
    defined = _defined_names(trees)
    found: dict[str, set[str]] = {}
    for path, tree in trees.items():
        imported = {  # names this file imports from a library: Trainer, TrainingArguments, ...
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES
            for alias in node.names
        }
        for node in ast.walk(tree):
            # a version gate, hasattr(Trainer, "loss_is_scaled_for_ga"): the name is used whether it exists or not
            if (
                _call_name(node) == "hasattr"
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in imported
                and isinstance(node.args[1], ast.Constant)
            ):
                found.setdefault(f"{node.args[0].id}.{node.args[1].value}", set()).add(path.name)
            names = []
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                names.append(node.attr)
                # torch._dynamo, torch._foreach_norm: a private member of a library module is its own entry
                if isinstance(node.value, ast.Name) and node.value.id in LIBRARIES:
                    found.setdefault(f"{node.value.id}.{node.attr}", set()).add(path.name)
                    continue
            elif _call_name(node) in NAMED_ATTRIBUTE_CALLS:  # getattr(m, "_orig_mod"), __dict__.pop("_x")
                names += _string_arguments(node)
            for name in names:
                if name not in defined:
                    found.setdefault(f".{name}", set()).add(path.name)
    return found


def _library_of(cls: type) -> str:
    return cls.__module__.split(".")[0]


def _counted_override(base: type, name: str) -> bool:
    if _library_of(base) not in HF_LIBRARIES:
        return False  # torch's Dataset/Sampler/autograd.Function, argparse: documented extension points
    if name.startswith("__") and name not in ("__init__", "__post_init__"):
        return False
    return not (base.__name__ == "TrainerCallback" and name.startswith("on_"))


def overridden_methods() -> dict[str, set[str]]:
    sys.path.insert(0, str(ROOT))
    paths = sorted(p for p in ROOT.glob("clip_lora/*.py") if p.stem != "__main__")  # __main__ runs the CLI
    modules = []
    for name in [f"clip_lora.{p.stem}" for p in paths] + list(IMPORTABLE[1:]):
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as missing:  # an optional extra (gradio for the app) not installed
            if missing.name.split(".")[0] in ("clip_lora", *IMPORTABLE):
                raise
    found: dict[str, set[str]] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            ours = [c for c in cls.__mro__ if _library_of(c) in IMPORTABLE]
            theirs = [c for c in cls.__mro__ if _library_of(c) in LIBRARIES]
            for own in ours:
                for name, value in vars(own).items():  # methods and class attributes (loss_is_scaled_for_ga)
                    if name.startswith("__") and not callable(value):
                        continue  # __module__, __doc__, __dict__, ...
                    base = next((b for b in theirs if name in vars(b)), None)
                    # the dataclass's own __init__, and its fields: flags with other defaults are public API
                    generated = dataclasses.is_dataclass(own) and (
                        name == "__init__" or name in own.__dataclass_fields__
                    )
                    if base is not None and not generated and _counted_override(base, name):
                        found.setdefault(f"{base.__name__}.{name}", set()).add(
                            own.__module__.split(".")[-1] + ".py"
                        )
    return found


def scan() -> dict[str, set[str]]:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in source_files()}
    found: dict[str, set[str]] = {}
    for part in (imported_internals(trees), attribute_internals(trees), overridden_methods()):
        for name, where in part.items():
            found.setdefault(name, set()).update(where)
    return found


if __name__ == "__main__":
    for name, where in sorted(scan().items()):
        print(f"{name}  ({', '.join(sorted(where))})")
