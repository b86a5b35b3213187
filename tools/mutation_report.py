"""MUTATION.md from the latest results: the curated list's rate and the generated mutants' rate, each with its
survivors and the reason each is equivalent. Used by tools/mutation.py; never edit MUTATION.md by hand."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "MUTATION.md"
CURATED_RESULTS = ROOT / "tools" / "mutation_results.json"  # every curated mutant's latest result
GENERATED_RESULTS = (
    ROOT / "tools" / "mutation_generated_results.json"
)  # every generated mutant's latest result
RUNS = ROOT / "tools" / "mutation_runs.json"  # each run: kind, when, commit, mutants run, wall time
COUNTED = ("killed", "timeout", "survived")
NOT_JUSTIFIED = "**NOT JUSTIFIED: write a test that kills it or the reason it is equivalent**"


def load(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return [] if path == RUNS else {}


def save(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def _rate(killed: int, counted: int) -> str:
    return f"{killed}/{counted} = {100 * killed / max(1, counted):.1f}%"


def _runs(rows) -> str:
    runs = sorted({(r["when"], r["commit"]) for _, r in rows})
    return ", ".join(f"{when} UTC on {commit}" for when, commit in runs) or "none"


def _last_full_run(kind: str) -> str:
    full = [r for r in load(RUNS) if r["kind"] == kind and not r["filtered"]]
    if not full:
        return "no full run recorded"
    last = full[-1]
    return f"last full run {last['when']} UTC on {last['commit']}: {last['mutants']} mutants in {last['wall_s'] / 60:.1f} min"


def _per_file(counted) -> list[str]:
    per_file = Counter(m.path for m, _ in counted)
    killed = Counter(m.path for m, r in counted if r["status"] != "survived")
    return [
        "| file | killed / mutants |",
        "| --- | ---: |",
        *(f"| {path} | {killed[path]} / {n} |" for path, n in sorted(per_file.items())),
    ]


def curated_section(
    mutants, results: dict, stale_rows, mutant_key
) -> tuple[list[str], tuple[int, int, list]]:
    stale_set = {mutant_key(m) for m, _ in stale_rows}
    rows = [(m, results.get(mutant_key(m))) for m in mutants if mutant_key(m) not in stale_set]
    counted = [(m, r) for m, r in rows if r and r["status"] in COUNTED]
    survivors = [(m, r) for m, r in counted if r["status"] == "survived"]
    killed = len(counted) - len(survivors)
    lines = [
        "## Curated mutants (tools/mutants.py)",
        "",
        "Each is one realistic one-line bug, written by hand; it is killed when a test covering its file fails.",
        "",
        f"- runs: {_runs(counted)} (a full run, then any `--only` reruns; each row below says which)",
        f"- **kill rate: {_rate(killed, len(counted))}**; {_last_full_run('curated')}",
        f"- stale mutants (snippet no longer in its file; not counted): {len(stale_rows)}",
        f"- mutants never run (not counted): {sum(1 for _, r in rows if not r)}",
        "",
        *_per_file(counted),
        "",
        "### Survivors and why each is equivalent",
        "",
    ]
    for m, _ in survivors:
        lines.append(
            f"- `{m.path}`: {m.bug}. `{m.original.strip()}` -> `{m.mutated.strip()}`. {m.equivalent or NOT_JUSTIFIED}"
        )
    if not survivors:
        lines.append("None.")
    if stale_rows:
        lines += ["", "### Stale mutants (rewrite them against the current code)", ""]
        lines += [f"- `{m.path}`: {m.bug} ({why})" for m, why in stale_rows]
    lines += [
        "",
        "### Every curated mutant",
        "",
        "| file | bug | result | killed by | run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m, r in rows:
        r = r or {"status": "not run", "by": "", "when": "", "commit": ""}
        lines.append(
            f"| {m.path} | {m.bug} | {r['status']} | {r['by'].replace('|', '/')} | {r['when']} {r['commit']} |"
        )
    unjustified = [m for m, _ in survivors if not m.equivalent]
    return lines, (killed, len(counted), unjustified)


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "/") + "`"


def generated_section(mutants, results: dict, equivalent: dict) -> tuple[list[str], tuple[int, int, list]]:
    rows = [(m, results.get(m.key)) for m in mutants]
    counted = [(m, r) for m, r in rows if r and r["status"] in COUNTED]
    survivors = [(m, r) for m, r in counted if r["status"] == "survived"]
    killed = len(counted) - len(survivors)
    reasons = {m.key: equivalent.get((m.path, m.function, m.original, m.mutated)) for m, _ in survivors}
    lines = [
        "## Generated mutants (tools/mutagen.py over tools/generated_mutants.py)",
        "",
        "Every operator-level mutant of the functions that make reported numbers or guard outputs: comparisons,",
        "arithmetic, `and`/`or`, a dropped `not`/minus, constants +-1, a dropped slice bound, swapped call arguments,",
        "a dropped constant keyword, min/max-like swaps. Nobody chose them. Each runs the fast tests of its file.",
        "",
        f"- runs: {_runs(counted)}",
        f"- **kill rate: {_rate(killed, len(counted))}**; {_last_full_run('generated')}",
        f"- mutants never run (not counted): {sum(1 for _, r in rows if not r)}",
        "",
        *_per_file(counted),
        "",
        "### Survivors and why each is equivalent",
        "",
    ]
    for m, _ in survivors:
        lines.append(
            f"- `{m.path}` `{m.function}` (line {m.line}): {_code(m.original)} -> {_code(m.mutated)}. "
            f"{reasons[m.key] or NOT_JUSTIFIED}"
        )
    if not survivors:
        lines.append("None.")
    lines += [
        "",
        f"Every generated mutant's result (with the test that killed it): `{GENERATED_RESULTS.relative_to(ROOT)}`.",
    ]
    unjustified = [m for m, _ in survivors if not reasons[m.key]]
    return lines, (killed, len(counted), unjustified)


def write(curated: tuple[list[str], tuple], generated: tuple[list[str], tuple]) -> None:
    (c_lines, (c_killed, c_counted, _)), (g_lines, (g_killed, g_counted, _)) = curated, generated
    head = [
        "# Mutation testing: last result",
        "",
        "Generated by `make mutation` (tools/mutation.py); do not edit by hand. Two measures of the test suite:",
        "",
        f"- **curated**, the realistic one-line bugs listed in tools/mutants.py: **{_rate(c_killed, c_counted)}**",
        f"- **generated**, every operator-level mutant of the number-making functions: **{_rate(g_killed, g_counted)}**",
        "",
        "Only behavioural kills count: the tests in tools/mutation_runner.py NOT_BEHAVIOURAL (source-hash checks such",
        "as tests/test_flag_schema.py::test_the_packaged_description_is_this_parser, which fails for any edit of the",
        "files it hashes) are deselected from every mutant's run, so they never decide a kill.",
        "",
    ]
    REPORT.write_text("\n".join([*head, *c_lines, "", *g_lines]) + "\n")
