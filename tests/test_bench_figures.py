"""The host-work figures of docs/performance.md are the ones bench/host_step.py stored (bench/host_results.json), and RESULTS.md is
what bench/report.py renders from the stored JSON: no number in either is typed by hand.

Run: python -m pytest tests/test_bench_figures.py -q
"""

from __future__ import annotations

import json
import re

from testing_utils import ROOT, doc_page


def test_the_performance_page_host_figures_come_from_the_stored_bench_run():
    host = json.loads((ROOT / "bench" / "host_results.json").read_text())
    readme = " ".join(doc_page("performance").split())
    ops = f"{host['before']['ops_per_step']:,} -> {host['after']['ops_per_step']:,} operations"
    syncs = f"{host['before']['syncs_per_step']} -> {host['after']['syncs_per_step']} host reads per step"
    assert ops in readme and syncs in readme, (ops, syncs)


def test_results_md_is_the_rendering_of_the_stored_json(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT))
    from bench import report

    report.main(["--output", str(tmp_path / "RESULTS.md")])  # as --write-results would, elsewhere
    stored = (ROOT / "bench" / "RESULTS.md").read_text()
    assert (tmp_path / "RESULTS.md").read_text() == stored, (
        "stale: run python bench/report.py --write-results"
    )
    host = json.loads((ROOT / "bench" / "host_results.json").read_text())
    row = re.search(r"\| `ops_per_step` \| ([\d,]+) \| ([\d,]+) \|", stored)
    assert row.groups() == (f"{host['before']['ops_per_step']:,}", f"{host['after']['ops_per_step']:,}")
