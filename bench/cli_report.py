"""The "Answers at once" and "Reports at scale" sections of bench/RESULTS.md, from bench/front_door.py's and
bench/report_scale.py's JSON (bench/report.py writes the file)."""

from __future__ import annotations


def render_front_door(figures: dict | None) -> list[str]:
    if not figures:
        return ["## Answers at once", "", "Not measured yet: `python bench/front_door.py`."]
    after, before = figures["after"], figures.get("before") or {"cases": {}}
    goal = figures["goal_seconds"]
    lines = [
        "## Answers at once",
        "",
        f"From `python bench/front_door.py` (median of {after['repeat']} fresh processes per case, wall time from "
        f"spawn to exit; before: the same cases against {before.get('note', 'the code before')}, median of "
        f"{before.get('repeat', '-')}). Machine: {after['cpus']} CPUs, 1-minute load average "
        f"{after['load_average_1min']} ({after['note']}). Goal: each <= {goal:g} s, answered before torch loads.",
        "",
        "| case | before, s | after, s | torch loaded (after) | goal met |",
        "|---|---|---|---|---|",
    ]
    for name, case in after["cases"].items():
        old = before["cases"].get(name, {}).get("seconds")
        met = "yes" if case["seconds"] <= goal and not case["torch_loaded"] else "**no**"
        shown = "" if old is None else f"{old:.2f}"
        lines.append(
            f"| {name} | {shown} | {case['seconds']:.2f} | {'yes' if case['torch_loaded'] else 'no'} | {met} |"
        )
    return lines


def render_report_scale(figures: dict | None) -> list[str]:
    if not figures:
        return ["## Reports at scale", "", "Not measured yet: `python bench/report_scale.py`."]
    rows = sorted((int(key.split("_")[3]), seconds) for key, seconds in figures.items())
    return [
        "## Reports at scale",
        "",
        "From `python bench/report_scale.py`: the report step alone (per-class report, the plots: confusion matrices "
        "capped at the 50 most confused classes, each with its full matrix as CSV) of a synthetic finished run with "
        "one val image per class, on this machine. Goal: the 1,000-class step under 30 s (before the cap, a "
        "1,000-class run was killed by the out-of-memory killer at 22 GB while drawing its matrix).",
        "",
        "| classes | report step, s |",
        "|---|---|",
        *(f"| {classes:,} | {seconds:.2f} |" for classes, seconds in rows),
    ]
