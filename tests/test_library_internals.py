"""docs/library_internals.md is the one list of other libraries' non-public names we use, and it is complete.

Run: python -m pytest tests/test_library_internals.py -q   (in `make test` and `make test-oldest`: both ends)
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re

import pytest
from library_internals_scan import ROOT, scan
from test_versions import floors

TABLE = ROOT / "docs" / "library_internals.md"
ROW = re.compile(
    r"^\| `(?P<name>[^`]+)` \| (?P<library>[\w_]+) \| (?P<where>[^|]+) \| (?P<why>[^|]+) \| (?P<checked>[^|]+) \|$"
)
OVERRIDDEN_CLASSES = {
    "Trainer": "transformers.Trainer",
    "TrainingArguments": "transformers.TrainingArguments",
    "HfArgumentParser": "transformers.HfArgumentParser",
    "EvaluationModule": "evaluate.EvaluationModule",
}


def listed() -> dict[str, dict]:
    rows = [
        ROW.match(line) for line in TABLE.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    assert all(rows), "a row of docs/library_internals.md does not have the table's five columns"
    return {row["name"]: row.groupdict() for row in rows}


@pytest.fixture(scope="module")
def used() -> dict[str, set[str]]:
    return scan()


def test_every_internal_the_code_uses_is_listed_and_every_listed_one_is_used(used):
    table = listed()
    unlisted = sorted(set(used) - set(table))
    assert not unlisted, (
        f"not in docs/library_internals.md: {unlisted} (used in {[sorted(used[n]) for n in unlisted]}); "
        "prefer the public API, or add a row with the versions you checked"
    )
    assert not sorted(set(table) - set(used)), "listed but no longer used: remove the rows"


def test_the_files_named_are_where_each_is_used(used):
    for name, row in listed().items():
        named = {part.strip().removeprefix("bench/") for part in row["where"].split(",")}
        assert named == used[name], (name, named, used[name])


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(dotted)


def test_each_importable_internal_and_overridden_method_exists_in_the_installed_versions():
    for name, row in listed().items():
        head = name.split(".")[0]
        installed = importlib.metadata.version(row["library"]) if row["library"] != "python" else None
        if f"{installed} (absent)" in row["checked"]:
            continue  # a version gate in the code handles it (Trainer.loss_is_scaled_for_ga before 5.25)
        if head in OVERRIDDEN_CLASSES:  # an override of a method the library renamed would silently never run
            assert hasattr(_resolve(OVERRIDDEN_CLASSES[head]), name.split(".", 1)[1]), name
        elif not name.startswith("."):
            _resolve(name)  # raises when the name moved
        else:
            continue  # an attribute of an object: exercised by the behaviour tests of the file that uses it


def test_each_row_was_checked_on_its_librarys_floor():
    lowest = {**floors(), "python": floors()["python"]}
    for name, row in listed().items():
        floor = lowest[row["library"]]
        versions = [v.strip().removesuffix(" (absent)") for v in row["checked"].split(",")]
        assert floor in versions, (name, row["checked"], floor)
