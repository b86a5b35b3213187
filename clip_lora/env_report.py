"""clip-lora env: what a bug report needs to know about this machine, ready to paste (like `transformers env`).

    clip-lora env

Lists this project's version and git commit (from a checkout), Python, the platform, the versions of the libraries
that shape a run (the same list run_config.json records: clip_lora/provenance.py), the devices torch sees and its
CUDA, and the accelerate config `accelerate launch` would use without --config_file (its path and contents), plus
any ACCELERATE_* variables set. Versions are read from the installed packages' metadata; torch is imported for the
devices only.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from clip_lora.errors import Parser

# Also in a report: the libraries whose versions explain a loading or Hub problem (not recorded per run).
SUPPORTING = ("huggingface_hub", "safetensors", "tokenizers", "numpy", "pillow")


def default_accelerate_config() -> Path | None:
    """The file `accelerate launch` reads when no --config_file is given, if it exists (accelerate's own rule:
    $HF_HOME/accelerate/default_config.yaml, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface or ~/.cache/...)."""
    from accelerate.commands.config.config_args import default_config_file

    path = Path(default_config_file)
    return path if path.is_file() else None


def devices() -> list[tuple[str, str]]:
    import torch

    rows = [("torch CUDA build", torch.version.cuda or "none (CPU build)")]
    cuda = torch.cuda.is_available()
    rows.append(("CUDA available", f"yes, {torch.cuda.device_count()} device(s)" if cuda else "no"))
    if cuda:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            rows.append((f"cuda:{index}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB"))
        rows.append(("cuDNN", str(torch.backends.cudnn.version())))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        rows.append(("MPS available", "yes"))
    rows.append(("CPU threads (torch)", str(torch.get_num_threads())))
    return rows


def report() -> str:
    from clip_lora import provenance

    code = provenance.code_version()
    commit = code["git_commit"]
    if commit:
        commit_text = commit + (" (with uncommitted changes)" if code["git_dirty"] else "")
    else:
        commit_text = "not a git checkout"
    versions = provenance.library_versions()
    rows = [
        ("clip-lora", code["clip_lora"]),
        ("git commit", commit_text),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("platform", platform.platform()),
        *((name, versions[name] or "not installed") for name in provenance.LIBRARIES),
        *((name, _version(name)) for name in SUPPORTING),
        *devices(),
    ]
    config = default_accelerate_config()
    rows.append(
        ("accelerate config", str(config) if config else "none (accelerate launch uses its defaults)")
    )
    rows += sorted((name, value) for name, value in os.environ.items() if name.startswith("ACCELERATE_"))
    lines = [
        "Copy and paste the text below into your bug report:",
        "",
        *(f"- {name}: {value}" for name, value in rows),
    ]
    if config:
        text = config.read_text(encoding="utf-8", errors="replace").rstrip()
        lines += ["", f"accelerate config ({config.name}):", *(f"    {line}" for line in text.splitlines())]
    return "\n".join(lines)


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> None:
    Parser(
        prog="clip-lora env",
        description="Print versions, devices and the accelerate config in use, to paste into a bug report.",
    ).parse_args(argv)
    print(report())
