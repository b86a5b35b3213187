"""One error hierarchy: every mistake a user can fix is a `ClipLoraError`.

`clip_lora.cli.run` is the one place that catches it, prints `error: <message>` (one line) and exits 2, for every verb.
A message says what was wrong and what to do; code that raises one never prints.
"""

from __future__ import annotations

import argparse


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


class OneLineParserMixin:
    """For argparse parsers: a bad flag raises ArgumentError (one `error:` line) instead of printing usage + exiting."""

    def error(self, message: str):
        raise ArgumentError(f"{message}; see `{self.prog} --help`.")


class Parser(OneLineParserMixin, argparse.ArgumentParser):
    """argparse.ArgumentParser under the one-line error contract (every verb's own flags)."""
