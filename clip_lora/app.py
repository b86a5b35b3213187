"""clip-lora app: a local page to look at a run's results (needs the optional extra: pip install clip-lora[app]).

    clip-lora app runs/demo                       # a run's output_dir
    clip-lora app USER/clip-lora-imagenette       # a pushed adapter (downloaded once into the HF cache)
    clip-lora app runs/demo --port 7861 --data_dir runs/demo-assets/imagenette

The page (served on 127.0.0.1, never shared, no analytics) shows (a) the top-5 of the fine-tuned model beside the
zero-shot model for an uploaded image, (b) the val images whose prediction the fine-tuning changed (fixed: zero-shot
wrong -> fine-tuned right; broken: the reverse) with their probabilities, from the run's two predictions CSVs, and
(c) the per-class report and the confusion matrices. This module holds the verb (the run's folder, its adapter, the
port); clip_lora/app_run.py the data behind the page (the changed images and their files come from
clip_lora/changes.py, as in changes.png); clip_lora/app_page.py builds the page itself (the only place that imports
gradio). Imports go one way: app -> app_page -> app_run, app -> app_run.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

from clip_lora import artifacts, sources
from clip_lora.app_run import Classifier, load_view
from clip_lora.errors import ArgumentError, MissingExtraError, ModelError
from clip_lora.verb_args import app_args

INSTALL_HINT = "pip install clip-lora[app]"


def is_hub_id(source: str) -> bool:
    return sources.is_hub_id(source) and source.count("/") == 1  # a pushed run is USER/NAME


def resolve_run(source: str) -> Path:
    """A run's folder: source itself, or a Hub repo's snapshot (cached; HF_HUB_OFFLINE=1 uses the cache only)."""
    where = sources.resolve(source, "clip-lora app", what="run folder", error=ModelError)
    if isinstance(where, Path):
        if not where.is_dir():
            raise ModelError(f"clip-lora app {source} is a file; pass a run's output folder or a hub id.")
        return where
    if not is_hub_id(source):
        raise ModelError(f"{source} is neither a run's output folder nor a hub id (USER/NAME).")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source))
    except Exception as err:  # noqa: BLE001 - not found, private, offline without a cached copy
        raise ModelError(
            f"cannot get {source} from the Hub ({type(err).__name__}); check the id, `hf auth login`, "
            "or pass a local run folder."
        ) from None


def adapter_path(run_dir: Path, run_config: dict) -> str:
    """The run's adapter: in its folder (a training run) or the one an eval-only run evaluated."""
    if all((run_dir / name).is_file() for name in artifacts.ADAPTER_FILES):
        return str(run_dir)
    if run_config.get("adapter_name_or_path"):
        return run_config["adapter_name_or_path"]
    raise ModelError(
        f"{run_dir} has no adapter ({', '.join(artifacts.ADAPTER_FILES)}) and its run used none; "
        "pass the output_dir of a training run."
    )


def check_port(host: str, port: int) -> None:
    """Fail before the model loads when the address cannot be served (taken, or not this machine's)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as err:
        raise ArgumentError(
            f"cannot serve on {host}:{port} ({err.strerror or err}); pass another --port or --host."
        ) from None


def main(argv: list[str] | None = None) -> None:
    args = app_args(argv)
    if not is_hub_id(args.run):  # a local folder is checked before anything is imported or downloaded
        local = resolve_run(args.run)
        adapter_path(local, artifacts.read_run_config(local))
    check_port(args.host, args.port)
    if importlib.util.find_spec("gradio") is None:
        raise MissingExtraError(f"clip-lora app needs Gradio, which is not installed: {INSTALL_HINT}")
    # Before gradio is imported: no usage analytics and no version check (the page must work offline).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    run_dir = resolve_run(args.run)
    adapter = adapter_path(run_dir, artifacts.read_run_config(run_dir))
    view = load_view(run_dir, args.data_dir)
    import torch

    classifier = Classifier(adapter, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    from clip_lora.app_page import serve

    serve(view, classifier, args.host, args.port)
