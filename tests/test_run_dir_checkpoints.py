"""run_dir.py's checkpoint and resume logic on folders of every shape: step numbers across digit boundaries
(checkpoint-9 / -10, -99 / -100, -500 / -1000), checkpoints complete, cut off, damaged or with a corrupt marker; a
corrupt run_config.json; an interrupted run made by an older version (flags it did not know yet). The resume point is
checked against a plain numeric sort, the flag list against a hand-labelled table.

Run: python -m pytest tests/test_run_dir_checkpoints.py -q
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_lora import artifacts, run_dir
from clip_lora.errors import ArgumentError
from clip_lora.run_dir import CHECKPOINT_COMPLETE, checkpoint_damage, last_complete_checkpoint
from testing_utils import ROOT

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None)
BOUNDARY_STEPS = (9, 10, 11, 99, 100, 101, 500, 999, 1000, 1001, 5000, 10000)
ADAPTER = "adapter_model.safetensors"
# Markers no save ever writes: a torn write, another program's file, a hand edit. Each must mean "not usable".
CORRUPT_MARKERS = {
    "empty": b"",
    "truncated": b'{"step": 3, "files": {"adapter',
    "null": b"null",
    "a list": b"[]",
    "no file list": b'{"step": 3}',
    "a file list that is a list": b'{"step": 3, "files": ["adapter_model.safetensors"]}',
    "an entry that is a number": b'{"step": 3, "files": {"adapter_model.safetensors": 5}}',
    "an entry without its size": b'{"step": 3, "files": {"adapter_model.safetensors": {"sha256": "00"}}}',
    "not UTF-8": b"\xff\xfe{",
}
STATES = ("complete", "interrupted", "damaged", "shorter", "file deleted", *CORRUPT_MARKERS)


def make_checkpoint(out: Path, step: int, state: str) -> Path:
    """checkpoint-<step> in one of STATES: complete, cut off before its marker, or broken after it."""
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / ADAPTER).write_bytes(step.to_bytes(4, "little") * 16)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if state == "interrupted":
        return folder
    run_dir.write_checkpoint_marker(folder, step)
    if state == "damaged":  # same size, one byte flipped: only the hash can tell
        data = bytearray((folder / ADAPTER).read_bytes())
        data[5] ^= 0xFF
        (folder / ADAPTER).write_bytes(bytes(data))
    elif state == "shorter":
        (folder / ADAPTER).write_bytes((folder / ADAPTER).read_bytes()[:-1])
    elif state == "file deleted":
        (folder / "trainer_state.json").unlink()
    elif state in CORRUPT_MARKERS:
        (folder / CHECKPOINT_COMPLETE).write_bytes(CORRUPT_MARKERS[state])
    return folder


def add_decoys(out: Path) -> set[str]:
    """Names that look like checkpoints but are not: never resumed from, never removed."""
    (out / "checkpoint-12-old").mkdir()
    (out / "checkpoint-latest").mkdir()
    (out / "checkpoint-99999").write_text("a file, not a folder")
    return {"checkpoint-12-old", "checkpoint-latest", "checkpoint-99999"}


checkpoint_sets = st.dictionaries(
    st.one_of(st.sampled_from(BOUNDARY_STEPS), st.integers(1, 12000)),
    st.sampled_from(STATES),
    min_size=1,
    max_size=7,
)


@SETTINGS
@given(checkpoints=checkpoint_sets, remove=st.booleans())
def test_the_newest_intact_checkpoint_is_resumed_across_digit_boundaries(checkpoints, remove):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for step, state in checkpoints.items():
            make_checkpoint(out, step, state)
        decoys = add_decoys(out)
        # The reference: a plain sort of the step numbers of the intact checkpoints.
        intact = sorted(step for step, state in checkpoints.items() if state == "complete")
        expected = intact[-1] if intact else None
        found = last_complete_checkpoint(out, remove_partial=remove)
        assert found == (None if expected is None else str(out / f"checkpoint-{expected}")), checkpoints
        # Only what comes after the resume point is removed (training writes those steps again).
        removed = {s for s in checkpoints if remove and expected is not None and s > expected}
        kept = {f"checkpoint-{s}" for s in checkpoints if s not in removed} | decoys
        assert {p.name for p in out.iterdir()} == kept


@SETTINGS
@given(checkpoints=checkpoint_sets, before=st.one_of(st.sampled_from(BOUNDARY_STEPS), st.integers(1, 12000)))
def test_the_checkpoint_before_a_bad_one_is_the_newest_intact_older_one(checkpoints, before):
    # What the fault line offers when the checkpoint being resumed holds an unsafe pickle (faults.py): the newest
    # intact checkpoint strictly older than it, never it, a newer one, or one of the same step under another name.
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for step, state in checkpoints.items():
            make_checkpoint(out, step, state)
        add_decoys(out)
        make_checkpoint(out / "padded", before, "complete").rename(out / f"checkpoint-0{before}")  # same step
        older = sorted(step for step, state in checkpoints.items() if state == "complete" and step < before)
        expected = None if not older else str(out / f"checkpoint-{older[-1]}")
        assert last_complete_checkpoint(out, before=out / f"checkpoint-{before}") == expected, checkpoints
        assert len(list(out.iterdir())) == len(checkpoints) + 5  # nothing removed


@pytest.mark.parametrize("kind", list(CORRUPT_MARKERS))
def test_a_corrupt_completion_marker_means_not_usable_never_a_crash(tmp_path, kind):
    make_checkpoint(tmp_path, 9, "complete")
    folder = make_checkpoint(tmp_path, 10, kind)
    assert checkpoint_damage(folder) == "its completion marker is unreadable"
    assert last_complete_checkpoint(tmp_path, remove_partial=True) == str(tmp_path / "checkpoint-9")
    assert not folder.exists()


@pytest.mark.parametrize(
    ("state", "damage"),
    [
        ("complete", None),
        ("damaged", f"{ADAPTER} does not match the hash recorded when it was saved"),
        ("shorter", f"{ADAPTER} does not match the hash recorded when it was saved"),
        ("file deleted", "trainer_state.json is missing"),
    ],
)
def test_the_damage_named_is_the_one_done(tmp_path, state, damage):
    assert checkpoint_damage(make_checkpoint(tmp_path, 100, state)) == damage


def test_the_marker_lists_every_file_of_the_checkpoint_and_nothing_else(tmp_path):
    folder = tmp_path / "checkpoint-1000"
    (folder / "nested" / "deeper").mkdir(parents=True)  # an adapter saved in a subfolder
    files = {ADAPTER: b"w" * 40, "nested/adapter_config.json": b"{}", "nested/deeper/rng_state.pth": b"r" * 3}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / CHECKPOINT_COMPLETE).write_text("a marker from an earlier save of this step")
    (folder / f"optimizer.pt.123{artifacts.ATOMIC_SUFFIX}").write_bytes(b"a write cut off")
    run_dir.write_checkpoint_marker(folder, 1000)
    marker = json.loads((folder / CHECKPOINT_COMPLETE).read_text())
    expected = {
        name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()
    }
    assert marker == {"step": 1000, "files": expected}
    assert checkpoint_damage(folder) is None


def test_finished_means_the_marker_and_nothing_else(tmp_path):
    (tmp_path / artifacts.ALL_RESULTS).write_text("{}")
    assert not run_dir.is_finished(tmp_path)
    run_dir.mark_finished(tmp_path)
    assert run_dir.is_finished(tmp_path)


# ---------------------------------------------------------------- the interrupted run's run_config.json
CORRUPT_RUN_CONFIGS = {
    "empty": b"",
    "truncated": b'{"learning_rate": 0.0',
    "null": b"null",
    "a list": b"[1, 2]",
    "a string": b'"learning_rate"',
    "not UTF-8": b"\xff\xfe{}",
}


@pytest.mark.parametrize("kind", list(CORRUPT_RUN_CONFIGS))
def test_a_corrupt_run_config_refuses_the_resume_in_one_line(tmp_path, kind):
    (tmp_path / artifacts.RUN_CONFIG).write_bytes(CORRUPT_RUN_CONFIGS[kind])
    assert run_dir.changed_flags(tmp_path, {"learning_rate": 1e-4}, {"learning_rate"}) == [
        f"{artifacts.RUN_CONFIG} unreadable"
    ]
    from clip_lora.arguments import parse_args

    argv = ["--model_name_or_path", str(ROOT), "--output_dir", str(tmp_path)]
    with pytest.raises(ArgumentError, match=f"other flags \\({artifacts.RUN_CONFIG} unreadable\\)"):
        run_dir.prepare(parse_args(argv)[3], {"learning_rate": 1e-4})
    run_dir.release_lock(tmp_path)


# flag -> (a TrainingArguments field?, shapes the result?): labelled by hand from the resume rule (docs/reliability.md).
FLAGS = {
    "learning_rate": (True, True),
    "seed": (True, True),
    "num_train_epochs": (True, True),
    "gradient_accumulation_steps": (True, True),
    "metric_for_best_model": (True, True),
    "logging_steps": (True, False),
    "dataloader_num_workers": (True, False),
    "save_total_limit": (True, False),
    "lora_r": (False, True),
    "loss": (False, True),
    "prompt_template": (False, True),
    "global_batch_size": (False, True),
    "cache_dir": (False, False),
    "preprocessing": (False, False),
    "streaming": (False, False),
    "provenance": (False, False),
}
TRAINING_KEYS = {flag for flag, (training, _) in FLAGS.items() if training}


@SETTINGS
@given(
    unknown_then=st.sets(st.sampled_from(sorted(FLAGS))),
    changed=st.sets(st.sampled_from(sorted(FLAGS))),
    removed_since=st.sets(st.sampled_from(["old_flag", "older_flag"])),
)
def test_a_run_by_an_older_version_resumes_unless_a_result_flag_differs(unknown_then, changed, removed_since):
    """The old run_config lacks the flags its version did not have and holds flags since removed (ours, so they
    count); each result flag missing, changed or gone is listed as `flag old -> new`, and nothing else."""
    new = {flag: f"value of {flag}" for flag in FLAGS}
    old = {
        flag: new[flag] + (" before" if flag in changed else "") for flag in FLAGS if flag not in unknown_then
    }
    old |= {flag: 1 for flag in removed_since}
    with tempfile.TemporaryDirectory() as tmp:
        artifacts.write_json(Path(tmp) / artifacts.RUN_CONFIG, old)
        listed = run_dir.changed_flags(Path(tmp), new, TRAINING_KEYS)
    expected = []
    for flag in sorted(set(FLAGS) | removed_since):
        if flag in removed_since:
            expected.append(f"{flag} 1 -> (unset)")
        elif FLAGS[flag][1] and flag in unknown_then:
            expected.append(f"{flag} (unset) -> {new[flag]}")
        elif FLAGS[flag][1] and flag in changed:
            expected.append(f"{flag} {old[flag]} -> {new[flag]}")
    assert listed == expected
