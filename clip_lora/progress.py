"""Progress bars where someone watches, nothing where output goes to a file; each known warning at most once.

    progress.configure()                                   # once per command (clip_lora.cli.run)
    for item in progress.bar(items, total=n, desc="Checking images"): ...

A progress bar redrawn into a log file is noise (`\\r` frames, and `\\x1b[A` cursor-up codes from nested bars): when
stderr is not a terminal, this project's bars and those of transformers, datasets and huggingface_hub are off, and
the Trainer prints its log lines instead of drawing bars (`disable_tqdm`, arguments.py).
"""

from __future__ import annotations

import sys
import warnings

from tqdm.auto import tqdm

# Warnings a user cannot act on, from libraries' own calls: (category, message regex).
KNOWN_WARNINGS = (
    # peft's PeftModel.__init__ reads model.is_gradient_checkpointing, deprecated by transformers 5.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
)


def interactive() -> bool:
    """True when stderr is a terminal (someone watches the bars)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def bar(iterable=None, total: int | None = None, desc: str | None = None, unit: str = "img"):
    """tqdm over `iterable`, drawn only on a terminal."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not interactive(), dynamic_ncols=True)


def configure(libraries: bool = True) -> None:
    """Library progress bars off when not on a terminal; the known library warnings silenced. `libraries=False`
    leaves the libraries for `configure_libraries()`, called once the verb knows it needs them (predict on an onnx
    export imports none of them)."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    if libraries:
        configure_libraries()


def configure_libraries() -> None:
    """transformers', datasets' and huggingface_hub's progress bars off when not on a terminal (imports them)."""
    if interactive():
        return
    import datasets
    import huggingface_hub.utils
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
