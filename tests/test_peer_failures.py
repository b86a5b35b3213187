"""peer_failures: under torchrun a fault on ONE process ends the run with one line naming that process and its cause.

Launched (tests/faulty_rank_launch.py) with the fault on process 1 only and on process 0 only, for three kinds of
fault: images unreadable on that node (exit 2), a full disk mid-training (74), a bug mid-training (a traceback there;
on process 1: on process 0 it is the unlaunched path).
Before: a fault on process 1 printed nothing (only the main process prints) and process 0 died with gloo's
"Connection closed by peer" traceback. And the decision itself, per process, with a store in memory.

Run: python -m pytest tests/test_peer_failures.py -q   (five short 2-process launches, ~2 min)
"""

from __future__ import annotations

import subprocess

import pytest

from clip_lora import peer_failures
from testing_utils import ROOT, smoke_argv, torchrun_command

CAUSES = {
    "unreadable": (2, "tench have no readable training images left"),
    "disk_full": (74, "no space left on the device"),
    "bug": (1, "an unexpected RuntimeError"),
    # nothing to hand over: process 0 says what it saw, the lost peer or the launcher's SIGTERM
    "killed": (-9, ("another process of this run stopped without a word", "terminated (SIGTERM)")),
}


# a bug on process 0 is the path without a launcher's (its traceback); every other pair is a launch
@pytest.mark.parametrize(
    "fault, faulty_rank",
    [("unreadable", 1), ("unreadable", 0), ("disk_full", 1), ("disk_full", 0), ("bug", 1), ("killed", 1)],
)
def test_a_fault_on_one_process_is_one_line_naming_it(
    fault, faulty_rank, tiny_model_dir, image_root, tmp_path
):
    argv = smoke_argv(
        tiny_model_dir, image_root, tmp_path / "out", "--max_train_samples", "24", "--max_eval_samples", "8"
    )
    argv.remove("--use_cpu")
    argv.remove("true")
    run = subprocess.run(
        torchrun_command(ROOT / "tests" / "faulty_rank_launch.py", *argv),
        env={**peer_env(), "FAULT": fault, "FAULT_RANK": str(faulty_rank)},
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )
    status, cause = CAUSES[fault]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode != 0, run.stderr[-4000:]
    assert "Connection closed by peer" not in run.stderr and "Connection reset by peer" not in run.stderr
    assert f"exitcode  : {status} " in run.stderr, run.stderr[
        -3000:
    ]  # torchrun's summary: the faulty process
    if fault == "bug":  # the bug keeps its traceback, on its own process only
        assert run.stderr.count("]: Traceback") == 1 and "RuntimeError: an injected bug" in run.stderr
    else:
        assert "]: Traceback" not in run.stderr, run.stderr[-4000:]
    if faulty_rank == 0:  # process 0 says its own fault (a bug: its traceback alone)
        assert errors == ([] if fault == "bug" else errors[:1]) and all(cause in line for line in errors), (
            errors
        )
        assert not any(line.startswith("error: process ") for line in errors)
    else:  # any other's is named by number, with its cause and exit status
        assert len(errors) == 1, run.stderr[-4000:]
        if fault == "killed":
            assert errors[0].startswith(tuple(f"error: {line}" for line in cause)), errors
        else:
            assert errors[0].startswith("error: process 1 of 2 failed: ") and cause in errors[0], errors


def peer_env() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


class MemoryStore:
    def __init__(self):
        self.values = {}

    def set(self, key, value):
        self.values[key] = value.encode()

    def check(self, keys):
        return all(key in self.values for key in keys)

    def get(self, key):
        return self.values[key]


class GoneStore:
    def set(self, key, value):
        raise RuntimeError("Connection refused")

    check = get = set


def as_process(monkeypatch, rank: int, store, world: int = 3):
    env = {"RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(peer_failures, "_store", store)
    monkeypatch.setattr(peer_failures, "PEER_WAIT_S", 0.0)


LOST = RuntimeError(
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:8876"
)


def test_the_failing_process_hands_its_line_to_the_main_process_which_prints_it_with_its_status(monkeypatch):
    store = MemoryStore()
    as_process(monkeypatch, 2, store)
    assert peer_failures.settle(74, "no space left on the device", OSError(), echo=False) == (74, None)
    as_process(monkeypatch, 0, store)
    for err, echo in (
        (LOST, False),
        (RuntimeError("x"), True),
    ):  # a lost collective, or the launcher's SIGTERM
        assert peer_failures.settle(1, None, err, echo) == (
            74,
            "process 2 of 3 failed: no space left on the device",
        )
    as_process(monkeypatch, 1, store)  # another peer: echoes, prints nothing
    assert peer_failures.settle(143, "terminated (SIGTERM)", RuntimeError(), echo=True) == (74, None)


def test_the_lowest_failed_process_is_named_and_the_main_processs_own_fault_wins(monkeypatch):
    store = MemoryStore()
    for rank, status in ((2, 74), (1, 2)):
        as_process(monkeypatch, rank, store)
        peer_failures.settle(status, f"cause {rank}", OSError(), echo=False)
    as_process(monkeypatch, 0, store)
    assert peer_failures.settle(1, None, LOST, echo=False) == (2, "process 1 of 3 failed: cause 1")
    assert peer_failures.settle(2, "its own", ValueError(), echo=False) == (2, "its own")


def test_without_a_store_each_process_prints_its_own_line_with_its_rank(monkeypatch):
    as_process(monkeypatch, 1, GoneStore())
    assert peer_failures.settle(74, "no space", OSError(), echo=False) == (74, "[rank 1] no space")
    assert peer_failures.settle(1, None, RuntimeError("bug"), echo=False) == (
        1,
        None,
    )  # its traceback says it
    as_process(monkeypatch, 0, GoneStore())
    status, line = peer_failures.settle(1, None, LOST, echo=False)  # a peer gone without a word: kill -9, OOM
    assert status == peer_failures.PEER_LOST_STATUS and line.startswith("another process of this run stopped")
    assert peer_failures.settle(143, "terminated (SIGTERM)", RuntimeError(), echo=True) == (
        143,
        "terminated (SIGTERM)",
    )
    as_process(monkeypatch, 1, GoneStore())  # the launcher's SIGTERM is said on every process that gets it
    assert peer_failures.settle(143, "terminated", RuntimeError(), echo=True) == (143, "[rank 1] terminated")


def test_not_launched_only_process_0_prints(monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    for rank, expected in ((0, "x"), (3, None)):
        monkeypatch.setenv("RANK", str(rank))
        assert peer_failures.settle(2, "x", ValueError(), echo=False) == (2, expected)


def test_a_lost_peer_is_seen_through_the_errors_it_caused():
    assert peer_failures.peer_lost(LOST)
    try:
        try:
            raise LOST
        except RuntimeError:
            raise ValueError("an error while handling it (a cleanup that needed the peer)")  # noqa: B904
    except ValueError as err:
        assert peer_failures.peer_lost(err)  # implicitly chained: the lost peer is still the cause
    wrapped = ValueError("outer")
    wrapped.__cause__ = LOST
    assert peer_failures.peer_lost(wrapped) and not peer_failures.peer_lost(
        RuntimeError("CUDA out of memory")
    )
