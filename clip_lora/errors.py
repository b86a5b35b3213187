"""One error hierarchy: every mistake a user can fix is a `ClipLoraError`.

`clip_lora.cli.run` is the one place that catches it, prints `error: <message>` (one line) and exits 2, for every verb.
A message says what was wrong and what to do; code that raises one never prints.
"""

from __future__ import annotations

import argparse
import difflib


class ClipLoraError(Exception):
    """A user-facing error: one line that names the input and says what to do."""


# Each subclass keeps the builtin it used to be, so code written against ValueError / RuntimeError still works.
class ArgumentError(ClipLoraError, ValueError):
    """A bad flag or recipe value."""


class DataError(ClipLoraError, ValueError):
    """Data that cannot be found, downloaded, read or split."""


class ModelError(ClipLoraError, ValueError):
    """A base model or adapter that cannot be loaded or used."""


class PromptError(ClipLoraError, ValueError):
    """A prompt template (or template file) that cannot be used."""


class HubError(ClipLoraError, RuntimeError):
    """A Hub push that cannot work (no token, no write access)."""


class TrainingError(ClipLoraError, RuntimeError):
    """Training that cannot go on (a non-finite loss, gradient or weight)."""


class PredictError(ClipLoraError, ValueError):
    """Inputs to `clip-lora predict` that give nothing to predict."""


class RunError(ClipLoraError, ValueError):
    """A run folder that is missing, is not a run, or lacks a file a verb reads (`clip-lora compare`)."""


class MissingExtraError(ClipLoraError, ImportError):
    """An optional extra a command needs is not installed (the message names the pip command)."""


class ClassNameError(ClipLoraError, ValueError):
    """Class names that cannot make a classifier: too few, duplicates, prompts too long for the text tower."""


def nearest(token: str, names) -> list[str]:
    """The names a mistyped `token` most likely meant: those it abbreviates, else the longest one it extends
    (`lora_rank` -> lora_r), else the closest spelling; [] when none is near."""
    names = sorted(set(names))
    longer = [n for n in names if n.startswith(token)]
    shorter = sorted((n for n in names if token.startswith(n)), key=len)
    return longer[:4] or shorter[-1:] or difflib.get_close_matches(token, names, n=1, cutoff=0.75)


def did_you_mean(token: str, names) -> str:
    close = nearest(token, names)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def close_flag(unknown: list[str], parser: argparse.ArgumentParser) -> str:
    """' (did you mean --x?)' for the first unknown flag near a real one, or ''."""
    # Each flag once, by its first long name (HfArgumentParser adds a --dashed-alias after it).
    options = [
        name
        for action in parser._actions
        if (name := next((o for o in action.option_strings if o.startswith("--")), None))
    ]
    for token in (t.split("=", 1)[0] for t in unknown if t.startswith("--")):
        hint = did_you_mean(token, options)
        if hint:
            return hint
    return ""


def unknown_arguments_line(unknown: list[str], parser: argparse.ArgumentParser) -> str:
    positional = [u for u in unknown if not u.startswith("-")]
    hint = close_flag(unknown, parser)
    if not hint and positional == unknown:  # e.g. `train --seed 1 smoke`: the recipe must come first
        hint = " (a recipe goes first, before any flag)"
    return f"unknown argument(s): {' '.join(unknown)}{hint}; see --help for the valid flags."


class OneLineParserMixin:
    """For argparse parsers: a bad flag raises ArgumentError (one `error:` line) instead of printing usage + exiting."""

    def error(self, message: str):
        if message.startswith("unrecognized arguments: "):
            message += close_flag(message.split(": ", 1)[1].split(), self)
        raise ArgumentError(f"{message}; see `{self.prog} --help`.")


class Parser(OneLineParserMixin, argparse.ArgumentParser):
    """argparse.ArgumentParser under the one-line error contract (every verb's own flags); flags are matched by
    their exact names (no prefix matching: `--output` must not quietly mean `--output_dir`)."""

    def __init__(self, *args, allow_abbrev: bool = False, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)
