"""The machinery of tools/mutation.py: the tree copied once, heavy libraries imported once, each mutant's tests in a
forked child (its own process group) with a timeout. The working tree is never touched."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mutation_report as report

ROOT = Path(__file__).resolve().parents[1]
HEAVY_IMPORTS = (
    "torch",
    "numpy",
    "PIL.Image",
    "datasets",
    "evaluate",
    "accelerate",
    "peft",
    "transformers",
    "transformers.trainer",
    "transformers.models.clip.modeling_clip",
    "pytest",
    "hypothesis",
    "sklearn.metrics",
    "scipy.stats",
    "matplotlib.pyplot",
)
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
# Tests that fail for any edit of the files they hash, whatever the edit does: a mutant they "kill" is no evidence
# that a behavioural test would catch it, so they are deselected from every mutant's run (and the baseline's).
# test_the_packaged_description_is_this_parser compares flag_schema.json's key, a hash of arguments.py,
# validation.py, prompts.py, flag_schema.py and metrics.py, with the sources (issue 29).
NOT_BEHAVIOURAL = ("tests/test_flag_schema.py::test_the_packaged_description_is_this_parser",)


def copy_tree(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, as they are now (uncommitted edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)


def preimport() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ["MPLBACKEND"] = "Agg"
    for name in HEAVY_IMPORTS:
        with contextlib.suppress(ImportError):  # the child imports it (slower) or the test needing it skips
            __import__(name)
    import torch

    torch.set_num_threads(1)
    leaked = [m for m in ("clip_lora", "metrics", "collator", "train_clip_lora") if m in sys.modules]
    assert not leaked, f"project modules imported before the fork would not be mutated: {leaked}"


def run_pytest(tree: Path, tests: list[str], log: Path, timeout: float) -> tuple[str, str]:
    """('killed'|'survived'|'timeout'|'no tests', first failing test) for pytest on `tests` inside `tree`."""
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 3
        try:
            os.setpgid(0, 0)  # its own process group: a timeout also ends the processes its tests started
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(tree)
            sys.path[:0] = [str(tree), str(tree / "tests")]
            os.environ["PYTHONPATH"] = os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])
            import pytest
            from hypothesis import Phase, settings

            # A mutant needs one failing example, not the smallest: shrinking would only cost time here.
            settings.register_profile("mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate))
            settings.load_profile("mutation")
            deselected = [arg for test in NOT_BEHAVIOURAL for arg in ("--deselect", test)]
            args = ["-x", "-q", "-rfE", "-p", "no:cacheprovider", "-p", "no:randomly", *deselected, *tests]
            code = int(pytest.main(args))
            import clip_lora

            if not Path(clip_lora.__file__).resolve().is_relative_to(tree.resolve()):
                print(f"clip_lora imported from {clip_lora.__file__}, not the mutated copy", flush=True)
                code = 4
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline, done = time.monotonic() + timeout, 0
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                return "timeout", ""
            time.sleep(0.2)
    finally:
        # Timed out, or Ctrl-C / SIGTERM here: the child must not outlive the run, nor the processes it forked
        # (gloo workers of a distributed test, blocked in a collective a mutant broke).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if not done:
            os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace") if log.exists() else ""
    first = next(iter(FAILED.findall(text)), "")
    if code == 0:
        return "survived", ""
    if code in (1, 2, 3):  # failures, collection/import errors (a mutant can break an import), a crash
        return "killed", first or f"pytest exit {code}"
    if code == 4:
        raise SystemExit(text[-2000:])
    return "no tests", f"pytest exit {code}: {text[-300:]}"


def run_mutants(tree: Path, jobs, results: dict, results_path: Path, stamp: dict, logs: Path) -> None:
    """jobs: (key, file, original text, mutated text, tests, timeout, label); each result saved as soon as it is in."""
    for i, (key, path, original, mutated, tests, timeout, label) in enumerate(jobs, 1):
        target = tree / path
        t0 = time.monotonic()
        try:
            target.write_text(mutated)
            status, by = run_pytest(tree, list(tests), logs / f"mutant-{i}.log", timeout)
        finally:
            target.write_text(original)
        print(f"[{i}/{len(jobs)}] {status:8s} {label}  {by}  {time.monotonic() - t0:.0f}s", flush=True)
        results[key] = {"status": status, "by": by, **stamp}
        report.save(results_path, results)  # after each mutant: Ctrl-C keeps what ran


def baseline(tree: Path, tests, log: Path, timeout: float) -> float:
    """Seconds the unmutated tree takes to pass `tests`; exits when it fails them."""
    t0 = time.monotonic()
    status, by = run_pytest(tree, sorted(set(tests)), log, timeout)
    if status != "survived":
        print(log.read_text()[-3000:])
        raise SystemExit(f"the unmutated tree fails its tests ({status}: {by}); fix that first")
    return time.monotonic() - t0
