"""clip-lora <verb>: one command for the whole project (`python -m clip_lora <verb>` is the same).

    clip-lora train smoke --output_dir runs/demo        # a packaged recipe by name (or a path), then flags
    clip-lora eval  --adapter_name_or_path runs/demo    # evaluate only
    clip-lora predict --adapter_name_or_path runs/demo photo.jpg folder/
    clip-lora export --adapter_name_or_path runs/demo --output_dir runs/demo-merged
    clip-lora sweep --seeds 0,1,2 smoke --output_dir runs/sweep
    clip-lora compare runs/sweep/seed-0 runs/sweep/seed-1   # what differs between two runs, and McNemar
    clip-lora app runs/demo                             # a page to look at the results (pip install clip-lora[app])
    accelerate launch --config_file $(clip-lora config 1gpu) train_clip_lora.py imagenette_vitb16
    clip-lora env                                       # versions, devices, accelerate config: for a bug report

This is the one boundary between a command and the user, for every verb:
- flags are parsed and checked before the verb's module (torch, transformers, peft, datasets) is imported
  (clip_lora/verb_args.py): a mistake or --help is answered at once;
- a ClipLoraError becomes `error: <message>` and exit status 2; the faults raised from below (a full disk, a
  read-only or forbidden folder, Ctrl-C, SIGTERM, an unsafe pickle) become one `error:` line saying what happened
  and what to do, with the status of their family (clip_lora/faults.py); anything else is a bug and keeps its
  traceback;
- a failed run leaves no output folder holding only its lock (run_dir.abandon).
Under torchrun / accelerate only the main process prints; a failure on another process reaches it as one line
naming that process (clip_lora/peer_failures.py).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

from clip_lora import faults, peer_failures, run_dir, verb_args
from clip_lora.errors import ClipLoraError, Parser
from clip_lora.resources import ACCELERATE_CONFIGS_DIR, RECIPES_DIR, accelerate_config_path, names

# verb -> (module, function taking argv, one-line help). Modules are imported only for the verb that runs.
VERBS = {
    "train": (
        "train_clip_lora",
        "main",
        "zero-shot -> LoRA fine-tuning -> val evaluation -> report, card, push",
    ),
    "eval": ("train_clip_lora", "eval_main", "evaluate a base model or an adapter on val (no training)"),
    "predict": (
        "clip_lora.predict_entry",
        "main",
        "classify image files and folders with a run's adapter or an export (onnx when it has one)",
    ),
    "export": (
        "clip_lora.export",
        "main",
        "merge an adapter into a standalone CLIPModel (--onnx: one onnx graph)",
    ),
    "sweep": ("clip_lora.sweep", "main", "the same run over several seeds, with mean/std and McNemar tests"),
    "compare": (
        "clip_lora.compare",
        "main",
        "two runs side by side: flags, data, versions, accuracy, McNemar",
    ),
    "app": ("clip_lora.app", "main", "a local page with a run's results (pip install clip-lora[app])"),
    "config": ("clip_lora.cli", "config_main", "print the path of a packaged accelerate config"),
    "env": (
        "clip_lora.env_report",
        "main",
        "versions, devices and the accelerate config in use, to paste into a bug report",
    ),
}

# Verbs that show no library progress bar (config, compare) or set the libraries up themselves (predict): importing
# transformers and datasets just to silence their bars would cost seconds before a path is printed.
NO_LIBRARY_SETUP = {"predict", "config", "compare"}


def config_main(argv: list[str]) -> None:
    parser = Parser(prog="clip-lora config", description="Print the path of a packaged accelerate config.")
    parser.add_argument("name", nargs="?", help=f"one of: {', '.join(names(ACCELERATE_CONFIGS_DIR))}")
    args = parser.parse_args(argv)
    if args.name is None:
        print("accelerate configs:", ", ".join(names(ACCELERATE_CONFIGS_DIR)))
        print("recipes:", ", ".join(names(RECIPES_DIR)))
    else:
        print(accelerate_config_path(args.name).resolve())


def usage() -> str:
    lines = ["usage: clip-lora <verb> [args]   (clip-lora <verb> --help for its flags)", "", "verbs:"]
    lines += [f"  {verb:<8} {help_text}" for verb, (_, _, help_text) in VERBS.items()]
    return "\n".join(lines)


def run(verb: str, argv: list[str]) -> int:
    """Run one verb; a ClipLoraError becomes one `error:` line and exit status 2, a fault from below one line with
    its family's status (faults.py)."""
    module, function, _ = VERBS[verb]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the tokenizer's threads vs. loader workers
    run_dir.forget_active()
    started = False  # past the flag check: the verb's module (and its progress bars) ran
    try:
        with faults.stop_requests():
            if verb_args.precheck(verb, argv):  # --help answered before any heavy import
                return 0
            started = True
            from clip_lora import progress

            # bars only on a terminal; known library warnings silenced. predict configures the libraries itself,
            # on its torch path only: on an onnx export it imports none of them.
            progress.configure(libraries=verb not in NO_LIBRARY_SETUP)
            getattr(importlib.import_module(module), function)(argv)
    except BaseException as err:
        with faults.saying_why():  # from the first statement: the launcher's SIGTERM must not cut the line
            return _fail(err, started)
    peer_failures.release_process_group()
    return 0


def _fail(err: BaseException, started: bool) -> int:
    """Print the failure's one line (under a launcher: the run's one line, clip_lora/peer_failures.py) and return the
    exit status; re-raise a bug."""
    if isinstance(err, SystemExit):  # a verb's own exit (argparse): its status as it chose
        raise err
    if isinstance(err, ClipLoraError):
        status, message = 2, str(err)
    else:
        described = faults.describe(err)
        if described is None and not peer_failures.peer_lost(err):
            peer_failures.settle(
                1, None, err, echo=False
            )  # under a launcher: the main process names this one
            run_dir.abandon()
            raise err
        status, message = described or (1, None)
    run_dir.abandon()
    # The frames the error held are released now; collecting them closes open progress bars, which would
    # otherwise print after the error line (an error raised mid-training). Nothing to close before the verb ran.
    if started:
        gc.collect()
    # The main process prints a failed peer's line when its own failure is only the echo of it (a lost collective,
    # the launcher's SIGTERM).
    status, line = peer_failures.settle(status, message, err, echo=isinstance(err, faults.Terminated))
    if line is not None:
        print(f"error: {line}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from clip_lora import __version__

        print(f"clip-lora {__version__}")
        return 0
    if argv[0] not in VERBS:
        print(
            f"error: unknown verb {argv[0]!r}; choose one of {', '.join(VERBS)} (clip-lora --help).",
            file=sys.stderr,
        )
        return 2
    return run(argv[0], argv[1:])


def _entry(verb: str):
    """The old one-verb console scripts (clip-lora-train, ...): same code, same contract."""
    return lambda argv=None: run(verb, list(sys.argv[1:] if argv is None else argv))


train, eval_, predict, export, sweep = (
    _entry(verb) for verb in ("train", "eval", "predict", "export", "sweep")
)
