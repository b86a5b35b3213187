"""The run directory is a transaction: a fault at any write leaves no half-written file and no "finished" run, and
the rerun resumes to the same bytes; a second run into the folder is refused; a rerun with other flags is refused;
--overwrite_output_dir clears the old run first; artifacts appear whole or not at all.

Run: python -m pytest tests/test_run_dir.py -q
CLIP_LORA_ALL_FAULTS=1 (set by `make fuzz`): every fault kind at every save point, instead of one fault at the first
save point of each kind of write.
"""

from __future__ import annotations

import collections
import csv
import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import train_clip_lora
from clip_lora import artifacts, run_dir
from clip_lora.arguments import parse_args
from clip_lora.cli import run as run_verb
from testing_utils import (
    FAULT_KINDS,
    FAULT_STATUS,
    ROOT,
    Killed,
    assert_same_results,
    fault_at,
    save_points,
    small_argv,
    user_error,
)

pytestmark = pytest.mark.usefixtures("image_check_cache")


def assert_nothing_half_written(out: Path) -> None:
    """Every artifact of ours (written by artifacts.atomic_write) parses; no temp file is left; the run does not
    look finished. (A library's own file cut off by a full disk may be partial: the rerun writes it again.) A run
    that failed before writing anything leaves no folder at all."""
    if not out.exists():
        return
    assert not run_dir.is_finished(out)
    assert not list(out.rglob(f"*{artifacts.ATOMIC_SUFFIX}"))
    ours = {artifacts.ALL_RESULTS, artifacts.RUN_CONFIG, artifacts.CLASSIFICATION_REPORT_JSON}
    for path in out.iterdir():
        if path.name in ours:
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            rows = list(csv.reader(path.open(newline="")))
            assert rows and len({len(r) for r in rows}) == 1, path
        elif path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()


def fault_plans(saves: list[tuple[str, str]]) -> list[list[tuple[tuple[str, str, int], str]]]:
    """Chains of (n-th save point of a writer and file name, fault kind), kinds in turn. By default one fault at the
    first save point of each (writer, file name) (every kind of write, and both kinds of step); with
    CLIP_LORA_ALL_FAULTS one chain per kind offset, at every save point, so every save point meets every kind."""
    seen = collections.Counter()
    targets = []
    for save in saves:
        seen[save] += 1
        targets.append((*save, seen[save]))
    every = bool(os.environ.get("CLIP_LORA_ALL_FAULTS"))
    targets = targets if every else [t for t in targets if t[2] == 1]
    chains = len(FAULT_KINDS) if every else 1
    return [
        [(target, FAULT_KINDS[(i + c) % len(FAULT_KINDS)]) for i, target in enumerate(targets)]
        for c in range(chains)
    ]


def assert_one_fault_line(status: int, kind: str, err: str, out: Path) -> None:
    """The CLI's answer to a fault: its family's status, one `error:` line last and no traceback, naming the
    checkpoint the rerun resumes from when there is one."""
    lines = err.rstrip().splitlines()
    assert status == FAULT_STATUS[kind], (kind, err[-2000:])
    assert "Traceback" not in err and lines[-1].startswith("error: "), err[-2000:]
    assert sum(line.startswith("error: ") for line in lines) == 1
    assert "rerun the same command" in lines[-1]
    checkpoint = run_dir.last_complete_checkpoint(out)
    if checkpoint:
        assert f"it resumes from {checkpoint}, the last complete checkpoint" in lines[-1], lines[-1]


def test_a_fault_at_every_save_point_is_one_line_then_the_rerun_resumes_to_the_same_bytes(
    small_run, tiny_model_dir, tmp_path, capsys
):
    data, reference, saves = small_run
    writers = {writer for writer, _ in saves}
    assert writers == {
        "atomic_write",
        "open",
        "torch.save",
        "safetensors",
        "training_step",
        "prediction_step",
    }
    assert (
        saves[-1] == ("atomic_write", artifacts.RUN_COMPLETE)
        and ("atomic_write", artifacts.ALL_RESULTS) in saves
    )
    folders = iter(tmp_path / f"out-{n}" for n in range(10**6))
    for plan in fault_plans(saves):
        out = next(folders)
        # Each rerun is itself cut off at the next save point: the run only ever moves forward, and each rerun
        # resumes from what the previous fault left (a fresh start, a complete checkpoint, or the final one).
        for target, kind in plan:
            for attempt in range(2):
                capsys.readouterr()
                on_save = fault_at(target, kind)
                argv = small_argv(tiny_model_dir, data, out)
                with save_points(out, on_save):
                    try:
                        if kind == "kill":  # SIGKILL: no boundary, no message
                            train_clip_lora.main(argv)
                            status = 0
                        else:
                            status = run_verb("train", argv)
                    except Killed:
                        status = None
                if on_save.fired:
                    break
                # A resumed run may no longer pass the n-th occurrence of a save point (it repeats fewer
                # evaluations): it finished instead, as it must. The save point is then met in a fresh folder.
                assert attempt == 0 and status == 0 and run_dir.is_finished(out), (target, kind)
                assert_same_results(out, reference)
                out = next(folders)
            if kind != "kill":
                assert_one_fault_line(status, kind, capsys.readouterr().err, out)
            assert_nothing_half_written(out)
        assert run_verb("train", small_argv(tiny_model_dir, data, out)) == 0
        assert run_dir.is_finished(out)
        assert_same_results(out, reference)


def test_a_finished_run_is_refused_by_its_marker_not_by_its_results_file(
    small_run, tiny_model_dir, tmp_path, capsys
):
    data, _, _ = small_run
    out = tmp_path / "out"
    out.mkdir()
    (out / artifacts.ALL_RESULTS).write_text("")  # what a full disk used to leave: not a finished run
    assert run_dir.prepare(parse_args(small_argv(tiny_model_dir, data, out))[3], {}) is None
    run_dir.mark_finished(out)
    line = user_error(small_argv(tiny_model_dir, data, out), capsys)
    assert line == (
        f"error: {out} already holds a finished run; pass --overwrite_output_dir to replace it or choose another "
        "--output_dir."
    )


def test_resume_with_other_result_flags_is_refused_listing_them(small_run, tiny_model_dir, tmp_path, capsys):
    data, reference, _ = small_run
    out = tmp_path / "out"
    out.mkdir()
    (out / artifacts.RUN_CONFIG).write_bytes((reference / artifacts.RUN_CONFIG).read_bytes())  # interrupted
    argv = small_argv(tiny_model_dir, data, out, "--learning_rate", "0.01", "--seed", "7", "--lora_r", "4")
    line = user_error(argv, capsys)
    assert line == (
        f"error: {out} holds an interrupted run made with other flags (learning_rate 0.005 -> 0.01; lora_r 16 -> 4; "
        "seed 42 -> 7); rerun with its flags to resume it, or pass --overwrite_output_dir to start over."
    )
    # Flags that do not shape the result (where logs go, how many loader workers) resume as before.
    same = small_argv(tiny_model_dir, data, out, "--logging_steps", "1", "--dataloader_num_workers", "0")
    training_args = parse_args(same)[3]
    assert run_dir.prepare(training_args, artifacts.read_json(reference / artifacts.RUN_CONFIG)) is None


def test_overwrite_clears_the_old_run_before_the_new_one_writes(tiny_model_dir, tmp_path):
    out = tmp_path / "old-run"
    (out / "checkpoint-3").mkdir(parents=True)
    for name in (artifacts.ALL_RESULTS, artifacts.RUN_CONFIG, artifacts.PREDICTIONS, artifacts.RUN_COMPLETE):
        (out / name).write_text("{}")
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--output_dir",
        str(out),
        "--overwrite_output_dir",
        "true",
    ]
    assert run_dir.prepare(parse_args(argv)[3], {}) is None
    assert [p.name for p in out.iterdir()] == [artifacts.RUN_LOCK]  # a cut-off new run leaves no old result
    user_folder = tmp_path / "photos"  # holds no run of ours: --overwrite_output_dir deletes nothing there
    user_folder.mkdir()
    (user_folder / "holiday.jpg").write_bytes(b"x")
    run_dir.prepare(parse_args([*argv[:3], str(user_folder), *argv[4:]])[3], {})
    assert (user_folder / "holiday.jpg").exists()


def test_a_second_run_into_a_locked_folder_stops_naming_the_holder(
    small_run, tiny_model_dir, tmp_path, capsys
):
    data, _, _ = small_run
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from clip_lora import run_dir; run_dir.acquire_lock(sys.argv[1]); "
            "print('held', flush=True); time.sleep(120)",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        line = user_error(small_argv(tiny_model_dir, data, out), capsys)
        assert line == (
            f"error: --output_dir {out.resolve()} is in use by another run (pid {holder.pid} on "
            f"{socket.gethostname()}); wait for it to end or choose another --output_dir."
        )
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: its lock file still names it, but the kernel released the lock.
    assert run_dir.lock_holder(out) == f"pid {holder.pid} on {socket.gethostname()}"
    run_dir.acquire_lock(out)
    assert run_dir.lock_holder(out) == f"pid {os.getpid()} on {socket.gethostname()}"
    run_dir.release_lock(out)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "all_results.json"
    artifacts.write_json(path, {"eval_accuracy": 0.5})
    with pytest.raises(Killed), artifacts.atomic_write(path) as f:
        f.write('{"eval_accu')
        raise Killed
    assert artifacts.read_json(path) == {"eval_accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["all_results.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_atomic_write_on_a_really_full_disk_keeps_the_old_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        artifacts.write_json(disk / "all_results.json", {"eval_accuracy": 0.5})
        with pytest.raises(OSError) as err:
            artifacts.write_json(disk / "all_results.json", {"big": "x" * 200_000})
        assert err.value.errno == errno.ENOSPC
        assert artifacts.read_json(disk / "all_results.json") == {"eval_accuracy": 0.5}
        assert [p.name for p in disk.iterdir()] == ["all_results.json"]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize(
    "name, shown",
    [("a\nb.jpg", "a\\nb.jpg"), ("tab\there.png", "tab\\there.png"), (b"caf\xe9.jpg", "caf\\udce9.jpg")],
)
def test_escape_path_makes_every_name_one_printable_line(name, shown):
    assert artifacts.escape_path(name) == shown
    assert artifacts.escape_path(Path(os.fsdecode(name))) == shown


def test_a_checkpoint_with_a_same_size_corrupt_file_is_damaged(tmp_path):
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    saved = bytes(range(256))
    (folder / "adapter_model.safetensors").write_bytes(saved)
    run_dir.write_checkpoint_marker(folder, 3)
    listed = json.loads((folder / run_dir.CHECKPOINT_COMPLETE).read_text())["files"]
    assert listed == {"adapter_model.safetensors": {"size": 256, "sha256": hashlib.sha256(saved).hexdigest()}}
    assert run_dir.checkpoint_damage(folder) is None
    flipped = bytearray(saved)
    flipped[128] ^= 0xFF  # same size: only the hash can tell
    (folder / "adapter_model.safetensors").write_bytes(bytes(flipped))
    assert run_dir.checkpoint_damage(folder) == (
        "adapter_model.safetensors does not match the hash recorded when it was saved"
    )


# Every TrainingArguments flag that changes what a run computes; a resume with any of them changed is refused.
SHAPING_TRAINING_FLAGS = [
    "seed",
    "data_seed",
    "learning_rate",
    "weight_decay",
    "max_grad_norm",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "metric_for_best_model",
]


@pytest.mark.parametrize("flag", SHAPING_TRAINING_FLAGS)
def test_every_result_flag_change_is_listed(tmp_path, flag):
    training_keys = {flag, "logging_steps", "dataloader_num_workers"}
    old = {flag: 1, "logging_steps": 10, "dataloader_num_workers": 0, "lora_r": 16}
    artifacts.write_json(tmp_path / artifacts.RUN_CONFIG, old)
    new = {**old, flag: 2, "logging_steps": 1, "dataloader_num_workers": 4}
    assert run_dir.changed_flags(tmp_path, new, training_keys) == [f"{flag} 1 -> 2"]
    assert run_dir.changed_flags(tmp_path, {**new, "lora_r": 4}, training_keys) == sorted(
        [f"{flag} 1 -> 2", "lora_r 16 -> 4"]
    )
