"""Mutation testing over a hand-written list of realistic one-line bugs (tools/mutants.py): `make mutation`.

    python tools/mutation.py                  # every mutant; writes MUTATION.md
    python tools/mutation.py --only stats.py  # rerun the mutants whose file or bug contains "stats.py"; the others
                                              # keep their last result (tools/mutation_results.json)
    python tools/mutation.py --resume         # after an interrupted run: keep its kills, run the rest
    python tools/mutation.py --list           # what would run, and which mutants are stale

Each mutant replaces one snippet of one file (the snippet must occur exactly once) and runs only the test files that
cover that file, with -x. Why a list and not mutmut/cosmic-ray: those generate every operator swap in a module
(hundreds of mutants for these files, most of them in logging and messages), and each mutant would pay the ~25 s it
takes to import torch/transformers/datasets on this 2-core machine. A list aims at the bugs that change reported
numbers (wrong axis, dropped term, wrong split, off-by-one) and says which tests should catch each one.

The working tree is never touched: the tracked and untracked (not ignored) files are copied to a temporary folder and
mutated there, so a crash or Ctrl-C leaves nothing behind and other processes can keep reading the tree. Third-party
libraries are imported once in this process; every mutant runs pytest in a forked child that imports the project's
modules fresh from the mutated copy. A mutant whose snippet no longer matches its file is reported as STALE (the
code changed under it; rewrite the mutant) and makes the run fail, as does a survivor without a written reason.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "MUTATION.md"
RESULTS = (
    ROOT / "tools" / "mutation_results.json"
)  # every mutant's latest result; MUTATION.md is drawn from it
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


def load_mutants():
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutants"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.MUTANTS


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
            args = ["-x", "-q", "-rfE", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
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
        if not done:  # timed out, or Ctrl-C / SIGTERM here: the child must not outlive the run
            os.kill(pid, signal.SIGKILL)
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


def stale(mutant) -> str | None:
    text = (ROOT / mutant.path).read_text()
    count = text.count(mutant.original)
    if count == 1:
        return None
    return "snippet not found" if count == 0 else f"snippet occurs {count} times"


def mutant_key(m) -> str:
    # The snippet pair is part of the key: a rewritten mutant is a new mutant, never an old result.
    return json.dumps([m.path, m.original, m.mutated])


def load_results() -> dict:
    try:
        return json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}


def write_report(mutants, results: dict, stale_rows) -> tuple[int, int, list]:
    """MUTATION.md from the latest result of every current mutant; (killed, counted, survivors without a reason)."""
    stale_set = {mutant_key(m) for m, _ in stale_rows}
    rows = [(m, results.get(mutant_key(m))) for m in mutants if mutant_key(m) not in stale_set]
    counted = [(m, r) for m, r in rows if r and r["status"] in ("killed", "timeout", "survived")]
    survivors = [(m, r) for m, r in counted if r["status"] == "survived"]
    killed = len(counted) - len(survivors)
    not_run = [m for m, r in rows if not r]
    runs = sorted({(r["when"], r["commit"]) for _, r in counted})
    per_file = Counter(m.path for m, _ in counted)
    per_file_killed = Counter(m.path for m, r in counted if r["status"] != "survived")
    lines = [
        "# Mutation testing: last result",
        "",
        "Generated by `make mutation` (tools/mutation.py over the mutants in tools/mutants.py); do not edit by hand.",
        "Each mutant is one realistic one-line bug; it is killed when a test covering its file fails.",
        "",
        f"- runs: {', '.join(f'{when} UTC on {commit}' for when, commit in runs) or 'none'}"
        " (a full run, then any `--only` reruns; each row below says which)",
        f"- **kill rate: {killed}/{len(counted)} = {100 * killed / max(1, len(counted)):.1f}%**",
        f"- stale mutants (snippet no longer in its file; not counted): {len(stale_rows)}",
        f"- mutants never run (not counted): {len(not_run)}",
        "",
        "| file | killed / mutants |",
        "| --- | ---: |",
        *(f"| {path} | {per_file_killed[path]} / {n} |" for path, n in sorted(per_file.items())),
        "",
        "## Survivors and why each is equivalent",
        "",
    ]
    for m, _ in survivors:
        reason = (
            m.equivalent or "**NOT JUSTIFIED: write a test that kills it or the reason it is equivalent**"
        )
        lines.append(f"- `{m.path}`: {m.bug}. `{m.original.strip()}` -> `{m.mutated.strip()}`. {reason}")
    if not survivors:
        lines.append("None.")
    if stale_rows:
        lines += ["", "## Stale mutants (rewrite them against the current code)", ""]
        lines += [f"- `{m.path}`: {m.bug} ({why})" for m, why in stale_rows]
    lines += [
        "",
        "## Every mutant",
        "",
        "| file | bug | result | killed by | run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m, r in rows:
        r = r or {"status": "not run", "by": "", "when": "", "commit": ""}
        lines.append(
            f"| {m.path} | {m.bug} | {r['status']} | {r['by'].replace('|', '/')} | {r['when']} {r['commit']} |"
        )
    REPORT.write_text("\n".join(lines) + "\n")
    return killed, len(counted), [m for m, _ in survivors if not m.equivalent]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        action="append",
        help="run only the mutants whose file or bug contains this text (repeatable)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the kills of the last run (tests are only ever added) and run every other mutant",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the mutants and the stale ones; run nothing"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds per mutant before it counts as killed"
    )
    args = parser.parse_args(argv)
    everything = load_mutants()
    stale_rows = [(m, why) for m in everything if (why := stale(m))]
    for m, why in stale_rows:
        print(f"STALE    {m.path}: {m.bug} ({why})", flush=True)
    stale_keys = {mutant_key(m) for m, _ in stale_rows}
    live = [
        m
        for m in everything
        if mutant_key(m) not in stale_keys
        and (not args.only or any(text in f"{m.path} {m.bug}" for text in args.only))
    ]
    if args.list:
        for m in live:
            print(f"{m.path}: {m.bug} -> {' '.join(m.tests)}")
        return 1 if stale_rows else 0
    # SIGTERM unwinds like Ctrl-C, so the temporary tree is removed and the running child is killed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    preimport()
    results = load_results() if args.only or args.resume else {}
    if args.resume:
        live = [m for m in live if results.get(mutant_key(m), {}).get("status") not in ("killed", "timeout")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    stamp = {
        "when": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}",
        "commit": commit.stdout.strip() + ("+edits" if dirty.stdout.strip() else ""),
    }
    with tempfile.TemporaryDirectory(prefix="clip-lora-mutation-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        baseline_tests = sorted({t for m in live for t in m.tests})
        status, by = run_pytest(tree, baseline_tests, Path(tmp) / "baseline.log", 3 * args.timeout)
        if status != "survived":
            print((Path(tmp) / "baseline.log").read_text()[-3000:])
            print(f"the unmutated tree fails its tests ({status}: {by}); fix that first", file=sys.stderr)
            return 2
        print(f"baseline: {len(baseline_tests)} test files pass unmutated", flush=True)
        for i, m in enumerate(live, 1):
            target = tree / m.path
            original = target.read_text()
            t0 = time.monotonic()
            try:
                target.write_text(original.replace(m.original, m.mutated, 1))
                status, by = run_pytest(tree, list(m.tests), Path(tmp) / f"mutant-{i}.log", args.timeout)
            finally:
                target.write_text(original)
            note = "  (equivalent: justified)" if status == "survived" and m.equivalent else ""
            print(
                f"[{i}/{len(live)}] {status:8s} {m.path}: {m.bug}  {by}{note}  {time.monotonic() - t0:.0f}s"
            )
            sys.stdout.flush()
            results[mutant_key(m)] = {"status": status, "by": by, **stamp}
            RESULTS.write_text(
                json.dumps(results, indent=1) + "\n"
            )  # after each mutant: Ctrl-C keeps what ran
    killed, counted, unjustified = write_report(everything, results, stale_rows)
    print(f"\nkill rate: {killed}/{counted} = {100 * killed / max(1, counted):.1f}%  (written: MUTATION.md)")
    for m in everything:
        r = results.get(mutant_key(m))
        if r and r["status"] == "survived":
            print(f"SURVIVED {m.path}: {m.bug} -- {m.equivalent or 'NOT JUSTIFIED'}")
        elif r and r["status"] == "no tests":
            print(f"NO TESTS {m.path}: {m.bug} -- {r['by']}")
    for m, why in stale_rows:
        print(f"STALE    {m.path}: {m.bug} ({why})")
    broken = [r for r in results.values() if r["status"] == "no tests"]
    return 1 if stale_rows or broken or unjustified else 0


if __name__ == "__main__":
    sys.exit(main())
