"""Mutation testing: `make mutation` runs the curated list of realistic one-line bugs (tools/mutants.py), then the
generated operator-level mutants of the number-making functions (tools/mutagen.py, tools/generated_mutants.py), and
writes both kill rates to MUTATION.md.

    python tools/mutation.py                  # both; writes MUTATION.md
    python tools/mutation.py --curated        # the curated list only (make mutation-curated)
    python tools/mutation.py --generated      # the generated mutants only (make mutation-generated; ~1 h on 2 CPUs)
    python tools/mutation.py --only stats.py  # rerun the mutants whose file, bug or function contains "stats.py";
                                              # the others keep their last result (tools/mutation*_results.json)
    python tools/mutation.py --resume         # keep the kills of the last run, run the rest (survivors, new ones)
    python tools/mutation.py --list           # what would run, and which curated mutants are stale

Curated: each mutant replaces one snippet of one file (the snippet must occur exactly once) and runs the test files
its entry names, with -x. The list aims at the bugs that change reported numbers (wrong axis, dropped term, wrong
split, off-by-one) and says which tests should catch each one. A mutant whose snippet no longer matches its file is
STALE (the code changed under it; rewrite the mutant) and makes the run fail, as does a survivor without a reason.
Generated: the same, for every operator-level mutant of the functions tools/generated_mutants.py names (see
tools/mutagen.py for the operators, and why not mutmut); each runs the fast tests of its file, with a timeout of a
few times their unmutated time. They measure the suite against bugs nobody listed.

The working tree is never touched: the tracked and untracked (not ignored) files are copied to a temporary folder and
mutated there (tools/mutation_runner.py). Third-party libraries are imported once in this process; every mutant runs
pytest in a forked child that imports the project's modules fresh from the mutated copy.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mutagen
import mutation_report as report
from generated_equivalent import EQUIVALENT
from generated_mutants import TARGETS
from mutation_runner import baseline, copy_tree, preimport, run_mutants

ROOT = Path(__file__).resolve().parents[1]


def load_mutants():
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutants"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.MUTANTS


def stale(mutant) -> str | None:
    text = (ROOT / mutant.path).read_text()
    count = text.count(mutant.original)
    if count == 1:
        return None
    return "snippet not found" if count == 0 else f"snippet occurs {count} times"


def mutant_key(m) -> str:
    # The snippet pair is part of the key: a rewritten mutant is a new mutant, never an old result.
    return json.dumps([m.path, m.original, m.mutated])


def curated_jobs(tree: Path, live, timeout: float) -> list:
    jobs = []
    for m in live:
        original = (tree / m.path).read_text()
        mutated = original.replace(m.original, m.mutated, 1)
        note = "  (equivalent: justified)" if m.equivalent else ""
        jobs.append((mutant_key(m), m.path, original, mutated, m.tests, timeout, f"{m.path}: {m.bug}{note}"))
    return jobs


def generated_jobs(tree: Path, live, logs: Path, timeout: float) -> list:
    """One job per generated mutant; its timeout a few times what its tests take unmutated (forked gloo tests can
    hang on a mutant that breaks a collective: the timeout kills them and counts as killed)."""
    jobs, took = [], {}
    for m in live:
        if m.tests not in took:
            took[m.tests] = baseline(tree, m.tests, logs / f"baseline-{len(took)}.log", 3 * timeout)
            print(f"baseline: {' '.join(m.tests)} pass unmutated in {took[m.tests]:.0f}s", flush=True)
        original = (tree / m.path).read_text()
        label = f"{m.path} {m.function}:{m.line} {m.original} -> {m.mutated}"
        limit = min(timeout, 4 * took[m.tests] + 20)
        jobs.append((m.key, m.path, original, m.apply(original), m.tests, limit, label))
    return jobs


def record_run(kind: str, stamp: dict, count: int, seconds: float, filtered: bool) -> None:
    runs = report.load(report.RUNS)
    runs.append({"kind": kind, **stamp, "mutants": count, "wall_s": round(seconds), "filtered": filtered})
    report.save(report.RUNS, runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--curated", action="store_true", help="run the curated list only")
    which.add_argument("--generated", action="store_true", help="run the generated mutants only")
    parser.add_argument(
        "--only",
        action="append",
        help="run only the mutants whose file, bug or function contains this text (repeatable)",
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
    generated = mutagen.generate(TARGETS, ROOT)

    def chosen(text: str) -> bool:
        return not args.only or any(part in text for part in args.only)

    live = [m for m in everything if mutant_key(m) not in stale_keys and chosen(f"{m.path} {m.bug}")]
    live_generated = [m for m in generated if chosen(f"{m.path} {m.function}")]
    live = [] if args.generated else live
    live_generated = [] if args.curated else live_generated
    if args.list:
        for m in live:
            print(f"{m.path}: {m.bug} -> {' '.join(m.tests)}")
        for m in live_generated:
            print(f"generated {m.path} {m.function}:{m.line}: {m.original} -> {m.mutated}")
        print(f"{len(live)} curated, {len(live_generated)} generated mutants")
        return 1 if stale_rows else 0
    # SIGTERM unwinds like Ctrl-C, so the temporary tree is removed and the running child is killed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    preimport()
    keep = args.only or args.resume or args.curated or args.generated
    curated_results = report.load(report.CURATED_RESULTS) if keep else {}
    generated_results = report.load(report.GENERATED_RESULTS) if keep else {}
    if args.resume:
        done = ("killed", "timeout")
        live = [m for m in live if curated_results.get(mutant_key(m), {}).get("status") not in done]
        live_generated = [
            m for m in live_generated if generated_results.get(m.key, {}).get("status") not in done
        ]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    stamp = {
        "when": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}",
        "commit": commit.stdout.strip() + ("+edits" if dirty.stdout.strip() else ""),
    }
    filtered = bool(args.only or args.resume)
    with tempfile.TemporaryDirectory(prefix="clip-lora-mutation-") as tmp:
        tree, logs = Path(tmp) / "tree", Path(tmp)
        copy_tree(tree)
        if live:
            t0 = time.monotonic()
            took = baseline(tree, [t for m in live for t in m.tests], logs / "baseline.log", 3 * args.timeout)
            print(f"baseline: the curated mutants' test files pass unmutated ({took:.0f}s)", flush=True)
            jobs = curated_jobs(tree, live, args.timeout)
            run_mutants(tree, jobs, curated_results, report.CURATED_RESULTS, stamp, logs)
            record_run("curated", stamp, len(live), time.monotonic() - t0, filtered)
        if live_generated:
            t0 = time.monotonic()
            jobs = generated_jobs(tree, live_generated, logs, args.timeout)
            run_mutants(tree, jobs, generated_results, report.GENERATED_RESULTS, stamp, logs)
            record_run("generated", stamp, len(live_generated), time.monotonic() - t0, filtered)
    curated = report.curated_section(everything, curated_results, stale_rows, mutant_key)
    generated_report = report.generated_section(generated, generated_results, EQUIVALENT)
    report.write(curated, generated_report)
    (c_killed, c_counted, c_unjustified), (g_killed, g_counted, g_unjustified) = (
        curated[1],
        generated_report[1],
    )
    print(f"\ncurated kill rate: {c_killed}/{c_counted} = {100 * c_killed / max(1, c_counted):.1f}%")
    print(
        f"generated kill rate: {g_killed}/{g_counted} = {100 * g_killed / max(1, g_counted):.1f}%  (MUTATION.md)"
    )
    for m in everything:
        r = curated_results.get(mutant_key(m))
        if r and r["status"] == "survived":
            print(f"SURVIVED {m.path}: {m.bug} -- {m.equivalent or 'NOT JUSTIFIED'}")
    for m in generated:
        r = generated_results.get(m.key)
        if r and r["status"] == "survived":
            reason = EQUIVALENT.get((m.path, m.function, m.original, m.mutated))
            print(
                f"SURVIVED {m.path} {m.function}:{m.line}: {m.original} -> {m.mutated} -- {reason or 'NOT JUSTIFIED'}"
            )
    for m, why in stale_rows:
        print(f"STALE    {m.path}: {m.bug} ({why})")
    broken = [
        r for r in [*curated_results.values(), *generated_results.values()] if r["status"] == "no tests"
    ]
    for r in broken:
        print(f"NO TESTS {r['by']}")
    return 1 if stale_rows or broken or c_unjustified or g_unjustified else 0


if __name__ == "__main__":
    sys.exit(main())
