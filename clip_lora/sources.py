"""Where things are: ONE decision "local path or Hub id" for every flag that takes either (base model, adapter,
dataset, a run to show), and the checks of a new output file's or folder's location.

    where = sources.resolve("runs/demo", "--adapter_name_or_path")   # Path: an existing local path; str: a Hub id
    sources.is_hub_id("openai/clip-vit-base-patch16")                # True
    sources.check_output_folder("--output_dir", "runs/merged")       # creatable here, or one ArgumentError line

A value that looks local is never sent to the Hub, whose validator would answer with an HFValidationError traceback
(or, for a well-formed id, "not found" about a folder the user simply mistyped). It looks local when it starts with
./ ../ / ~ (or is . or ..), has more than one "/" (a Hub id is `name` or `owner/name`), is not spelt as a Hub id can
be (huggingface_hub's rules: ASCII letters, digits, - _ . ; no -- or ..; at most 96 characters per part), when its
first folder exists here (`runs/dem0` while `runs/` exists), or when it lies under `runs/`, where this project
writes its runs (`runs/demo` before `make demo` made it: a run not made yet, never a Hub repo). A local value that
does not exist is one line naming the nearest folder that does and its closest entries (under runs/, or none near:
which command makes it); one that exists but cannot be read says so. Light on purpose: the CLI runs it before torch
is imported.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from clip_lora.errors import ArgumentError

# huggingface_hub.utils._validators.validate_repo_id, restated (tests/test_sources.py checks they agree).
HUB_NAME = re.compile(r"(?a:\b[\w\-.]{1,96}\b)")
# Where runs are written: every packaged recipe's output_dir and `make demo`'s (tests/test_input_checks.py checks).
RUNS_DIR = "runs"
DEMO_RUN = "runs/demo"


def _hub_spelling(value: str) -> bool:
    parts = value.split("/")
    return (
        0 < len(parts) <= 2
        and all(HUB_NAME.fullmatch(part) for part in parts)
        and "--" not in value
        and ".." not in value
        and not value.endswith(".git")
    )


def looks_local(value: str) -> bool:
    """True when `value` can only mean a path on this machine (see the module doc)."""
    if value in (".", "..") or value.startswith(("./", "../", "/", "~")) or os.sep != "/" and os.sep in value:
        return True
    if value.count("/") > 1 or not _hub_spelling(value):
        return True
    first = value.split("/", 1)[0]
    return Path(value).exists() or ("/" in value and (first == RUNS_DIR or Path(first).is_dir()))


def is_hub_id(value: str | None) -> bool:
    return bool(value) and not looks_local(value)


def _nearest(path: Path) -> tuple[Path, list[Path]]:
    """The deepest existing folder above `path`, and its entries closest to the first missing part."""
    missing, parent = path, path.parent
    while not parent.is_dir() and parent != parent.parent:
        missing, parent = parent, parent.parent
    try:
        entries = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
    except OSError:
        entries = []
    return parent, [parent / n for n in difflib.get_close_matches(missing.name, entries, n=3, cutoff=0.6)]


def missing_path_hint(value: str) -> str:
    """What to do about a path that does not exist: the closest existing entries, the command that makes a run
    folder (under runs/), or the nearest existing folder."""
    path = Path(value).expanduser()
    here = Path.cwd()
    parent, close = _nearest(path if path.is_absolute() else here / path)

    def shown(p: Path) -> str:  # as the user wrote it: relative paths stay relative
        return str(p if path.is_absolute() else os.path.relpath(p, here))

    if close:
        return f"did you mean {' or '.join(map(shown, close))}?"
    if Path(value).parts[:1] == (RUNS_DIR,):  # a run folder: made by a command, not typed wrong
        if Path(value) == Path(DEMO_RUN) or not Path(RUNS_DIR).is_dir():
            return f"run `make demo` first: it trains the demo run into {DEMO_RUN}."
        return f"no run was written there; train one into it (`clip-lora train ... --output_dir {value}`)."
    return f"the nearest existing folder is {shown(parent)}; check the path."


def missing_path_line(flag: str, value: str, what: str = "folder") -> str:
    """`--flag value: no such folder (relative to CWD); did you mean X?` (or what else to do: missing_path_hint)."""
    where = "" if Path(value).expanduser().is_absolute() else f" (relative to {Path.cwd()})"
    return f"{flag} {value}: no such {what}{where}; {missing_path_hint(value)}"


def resolve(value: str, flag: str, what: str = "folder", error=ArgumentError) -> Path | str:
    """An existing local path (a Path, `~` expanded), or `value` itself when it is a Hub id; raises `error` (one
    line) for a local-looking value that does not exist."""
    if not looks_local(value):
        return value
    path = Path(value).expanduser()
    if not path.exists():
        raise error(missing_path_line(flag, value, what))
    check_readable(flag, path, error)
    return path


def check_readable(flag: str, path: Path, error=ArgumentError) -> None:
    """A folder whose entries can be listed and read, or a file that can be read; else one line."""
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise error(
            f"{flag} {path} cannot be read (permission denied); fix its permissions or pass another path."
        )


def text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL byte"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return (
            "contains bytes that are not UTF-8 text; pass UTF-8 (rename the file or folder if it is a path)"
        )
    return None


def check_output_file(flag: str, path: str | Path) -> None:
    """An output file's location, before any work: its folder exists and is writable, and it is not a folder."""
    path = Path(path)
    problem = text_problem(str(path))
    if problem:
        raise ArgumentError(f"{flag} {str(path)!r} {problem}.")
    if path.is_dir():
        raise ArgumentError(f"{flag} {path} is a folder; pass a file name.")
    parent = path.parent
    if not parent.is_dir():
        raise ArgumentError(
            f"{flag} {path}: the folder {parent} does not exist; create it or choose another path."
        )
    if not os.access(parent, os.W_OK):
        raise ArgumentError(f"{flag} {path}: the folder {parent} is not writable; choose another path.")


def check_output_folder(flag: str, path: str | Path) -> None:
    """A new output folder's location, before any work: not a file, not inside a file, creatable."""
    path = Path(path)
    problem = text_problem(str(path))
    if problem:
        raise ArgumentError(f"{flag} {str(path)!r} {problem}.")
    if path.exists() and not path.is_dir():
        raise ArgumentError(f"{flag} {path} is a file; pass a folder.")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir():
        raise ArgumentError(f"{flag} {path}: {existing} is a file; choose another folder.")
    if not os.access(existing, os.W_OK):
        raise ArgumentError(f"{flag} {path}: {existing} is not writable; choose another folder.")
