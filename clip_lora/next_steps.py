"""The last lines of a finished run: where its results are and the commands to try next, runnable as printed.

    print(next_steps("runs/demo", run_config))
    # results: runs/demo (README.md: the model card; all_results.json, predictions.csv, *.png)
    # next (clip-lora is in .venv: first `. .venv/bin/activate`, or call .venv/bin/clip-lora):
    #   clip-lora predict --adapter_name_or_path runs/demo runs/demo-assets/imagenette/val
    #   ...

`make demo` ends with them, so a newcomer is told where to look and what to type (with the venv activation the
commands need when `clip-lora` is not on PATH). Every command is built from the run's own record (run_config.json:
the base model, the data, the output folder), so it runs as printed.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from clip_lora.provenance import data_source

DEFAULTS = {"dataset_name": "imagenette", "imagenette_size": "full", "download": True}


def _shown(path: str | Path) -> str:
    """A path as a user types it here: relative when it lies under the current folder."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def how_to_call() -> tuple[str, str | None]:
    """The command word and, when `clip-lora` on PATH is not this install's, how to make it so (the venv's
    activation) or the script to call instead."""
    script = Path(sys.executable).parent / "clip-lora"
    found = shutil.which("clip-lora")
    if found and Path(found).resolve() == script.resolve():
        return "clip-lora", None
    if script.is_file():
        venv_bin = _shown(script.parent)
        return "clip-lora", f"first `. {venv_bin}/activate`, or call {venv_bin}/clip-lora"
    return f"{Path(sys.executable).name} -m clip_lora", None


def _data_flags(config: dict) -> list[str]:
    """The flags that find the run's base model and data again (those that differ from the defaults)."""
    flags = []
    if config.get("model_name_or_path"):
        flags += ["--model_name_or_path", _shown(config["model_name_or_path"])]
    for name in ("dataset_name", "data_dir", "imagenette_size", "download"):
        value = config.get(name)
        if value is not None and value != DEFAULTS.get(name):
            shown = str(value).lower() if isinstance(value, bool) else value
            flags += [f"--{name}", _shown(shown) if name in ("dataset_name", "data_dir") else shown]
    return flags


def _val_images(config: dict) -> str:
    root = data_source(config).get("root")
    if not root:
        return "IMAGES_OR_FOLDERS"
    val = next(
        (Path(root) / n for n in ("val", "validation", "test") if (Path(root) / n).is_dir()), Path(root)
    )
    return _shown(val)


def next_steps(output_dir: str | Path, config: dict) -> str:
    out = _shown(output_dir)
    word, activation = how_to_call()
    quote = shlex.join
    commands = [
        (
            quote([*word.split(), "predict", "--adapter_name_or_path", out, _val_images(config)]),
            "classify images",
        ),
        (quote([*word.split(), "app", out]), "a page with the results (pip install -e '.[app]' once)"),
        (
            quote(
                [*word.split(), "eval", "--adapter_name_or_path", out, *_data_flags(config)]
                + ["--output_dir", f"{out}-eval"]
            ),
            "evaluate the adapter again",
        ),
        (
            quote([*word.split(), "compare", out, "OTHER_RUN"]),
            "against another run, e.g. the same with --seed 1",
        ),
    ]
    lines = [
        f"results: {out} (README.md: the model card; all_results.json, predictions.csv and the plots)",
        "next" + (f" (clip-lora is not on PATH: {activation})" if activation else "") + ":",
    ]
    lines += [f"  {command}  # {what}" for command, what in commands]
    return "\n".join(lines)
