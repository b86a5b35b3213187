"""Writes that meet a path of the wrong kind end in one line naming the path, and change nothing there."""

from __future__ import annotations

import pytest

from clip_lora import artifacts, faults, run_dir


@pytest.fixture(autouse=True)
def no_run_in_progress(monkeypatch):
    """The resume clause names the run in progress; an in-process run of an earlier test may have left one."""
    monkeypatch.setattr(run_dir, "active_run", lambda: None)


def _fault(write, path):
    with pytest.raises(OSError) as err:
        write(path)
    return faults.describe(err.value)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: artifacts.atomic_write_text(p, "{}"),
        lambda p: artifacts.atomic_write_bytes(p, b"\x89PNG"),
        lambda p: artifacts.write_json(p, {"a": 1}),
    ],
)
@pytest.mark.parametrize("name", ["classification_report.json", "confusion_matrix.png"])
def test_a_folder_where_a_file_goes_is_named(tmp_path, write, name):
    target = tmp_path / name
    target.mkdir()
    (target / "kept.txt").write_text("kept")
    status, line = _fault(write, target)
    assert status == faults.EX_CANTCREAT
    assert line == (
        f"a folder is where a file goes at {target} (EISDIR); move or remove that folder (or choose another "
        "folder), then rerun the same command (nothing was left half-written)."
    )
    assert [p.name for p in target.iterdir()] == ["kept.txt"]  # nothing lost, no temp file left
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("depth", [1, 2])
def test_a_file_where_a_folder_goes_is_named(tmp_path, depth):
    blocker = tmp_path / "run"
    blocker.write_text("a file, not a folder")
    target = blocker.joinpath(*["sub"] * (depth - 1), "all_results.json")
    status, line = _fault(lambda p: artifacts.atomic_write_text(p, "{}"), target)
    assert status == faults.EX_CANTCREAT
    assert line.startswith("a file is where a folder goes on the path at ") and str(target) in line
    assert "(ENOTDIR); move or remove that file" in line
    assert blocker.read_text() == "a file, not a folder"
