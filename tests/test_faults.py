"""Faults from below reach the user as one line with their family's exit status (clip_lora/faults.py, the boundary
in clip_lora/cli.py); a failed run leaves no folder holding only its lock.

Every save point of a run, every fault kind: tests/test_run_dir.py; real signals and a real full disk:
tests/test_resume.py. Here: each family's members one by one, an unsafe pickle in a checkpoint, and the lock.

Run: python -m pytest tests/test_faults.py -q
"""

from __future__ import annotations

import collections
import errno
import io
import pickle
import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

import train_clip_lora
from clip_lora import artifacts, faults, run_dir
from clip_lora.cli import run as run_verb
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS, Killed, assert_same_results, fault_at, save_points, small_argv, smoke_argv

pytestmark = pytest.mark.usefixtures("image_check_cache")


def _chained(inner: BaseException) -> BaseException:
    """`inner` as a library re-raises it (datasets, accelerate): the fault is the cause of another exception."""
    try:
        try:
            raise inner
        except BaseException as err:
            raise RuntimeError("while saving") from err
    except RuntimeError as outer:
        return outer


def _implicitly_chained(inner: BaseException) -> BaseException:
    """`inner` with another error raised while handling it (no `from`): the fault is only the __context__."""
    try:
        try:
            raise inner
        except BaseException:
            raise RuntimeError("cleanup after the failed write failed too")  # noqa: B904 - the implicit chain
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "err, status, start",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/r/out/a.json"),
            74,
            "no space left on the device at ",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded", "/r/out/a.json"),
            74,
            "no space left on the device at ",
        ),
        (OSError(errno.EFBIG, "File too large"), 74, "no space left on the device (EFBIG)"),
        (_chained(OSError(errno.ENOSPC, "No space left on device")), 74, "no space left on the device"),
        (
            _implicitly_chained(OSError(errno.ENOSPC, "No space left on device")),
            74,
            "no space left on the device (ENOSPC)",
        ),
        (
            SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
            74,
            "no space",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/r/out/a.json"),
            73,
            "the file system is read-only at ",
        ),
        (
            OSError(errno.EACCES, "Permission denied", "/r/out/a.json"),
            73,
            "permission denied at /r/out/a.json",
        ),
        (OSError(errno.EPERM, "Operation not permitted"), 73, "not permitted (EPERM)"),
        (
            SafetensorError("Error while serializing: I/O error: Permission denied (os error 13)"),
            73,
            "permission",
        ),
        (KeyboardInterrupt(), 130, "interrupted (Ctrl-C); "),
        (faults.Terminated(), 143, "terminated (SIGTERM); "),
        (
            pickle.UnpicklingError("Weights only load failed.\nUnsupported global: GLOBAL os.system"),
            2,
            "refusing",
        ),
        (_chained(pickle.UnpicklingError("invalid load key, 'x'.")), 2, "refusing to load a pickle"),
    ],
)
def test_each_family_is_one_line_with_its_status(err, status, start):
    run_dir.forget_active()  # no run of this command is under way (an earlier test's may have been)
    described = faults.describe(err)
    assert described is not None and described[0] == status
    assert described[1].startswith(start) and "\n" not in described[1]
    if status != 2:  # what to do next: nothing was left half-written, rerun
        assert described[1].endswith("rerun the same command (nothing was left half-written).")


def test_a_torch_save_error_without_errno_is_a_failed_write_and_bugs_stay_tracebacks(tmp_path):
    run_dir.forget_active()
    try:
        torch.save(
            {"x": torch.zeros(2)}, tmp_path / "no-such-folder" / "x.pt"
        )  # the C++ writer's RuntimeError
    except RuntimeError as err:
        described = faults.describe(err)
    assert described is not None and described[0] == 74 and "RuntimeError" in described[1]
    for bug in (
        RuntimeError("shape mismatch"),
        ValueError("x"),
        OSError(errno.ENOENT, "gone"),
        SystemExit(0),
    ):
        assert faults.describe(bug) is None  # a bug or an exit keeps its traceback / status


def _checkpoint_with_an_unsafe_rng_state(checkpoint: Path) -> None:
    class Payload:  # any global outside torch's weights_only allow-list: an attacker's would run code
        def __reduce__(self):
            return (print, ("this ran while unpickling",))

    with open(checkpoint / "rng_state.pth", "wb") as f:
        pickle.dump({"python": Payload()}, f, protocol=2)
    run_dir.write_checkpoint_marker(checkpoint, int(checkpoint.name.split("-")[1]))  # as written by this tool


def test_an_unsafe_pickle_in_the_checkpoint_is_one_line_and_deleting_it_resumes_to_the_same_bytes(
    small_run, tiny_model_dir, tmp_path, capsys
):
    data, reference, _ = small_run
    out = tmp_path / "out"
    argv = small_argv(tiny_model_dir, data, out)
    with save_points(out, fault_at(("torch.save", "optimizer.pt", 2), "kill")), pytest.raises(Killed):
        train_clip_lora.main(argv)  # killed while saving checkpoint-2: the rerun resumes from checkpoint-1
    newest = out / "checkpoint-1"
    _checkpoint_with_an_unsafe_rng_state(newest)
    capsys.readouterr()
    assert run_verb("train", argv) == 2
    err = capsys.readouterr().err
    assert "this ran while unpickling" not in err and "Traceback" not in err
    line = err.rstrip().splitlines()[-1]
    assert line.startswith(f"error: {newest} holds a pickle that torch.load(weights_only=True) refuses (")
    assert "Unsupported global: GLOBAL print" in line and err.count("error: ") == 1
    assert line.endswith(
        f"could run code; delete {newest} (the rerun starts again), or pass --overwrite_output_dir to start over."
    )
    shutil.rmtree(newest)
    assert run_verb("train", argv) == 0
    assert_same_results(out, reference)


@pytest.fixture
def signals_as_a_terminal_leaves_them():
    """Ctrl-C and SIGTERM as an interactive shell hands them to Python: KeyboardInterrupt, and SIGTERM's default.
    A shell starts a background job (`pytest ... &`, nohup, some CI runners) with SIGINT ignored, and the CLI rightly
    leaves an ignored signal ignored, so there the run went on to the end whatever the machine's load (issue 29:
    `assert 0 == 130`; `timeout pytest ...` passed, as timeout resets the signals it catches for its child)."""
    wanted = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("signals_as_a_terminal_leaves_them")
def test_real_signals_at_any_moment_are_one_line_and_the_rerun_matches(
    small_run, tiny_model_dir, tmp_path, capsys
):
    """SIGINT (Ctrl-C) and SIGTERM delivered by the kernel to this process mid-run, through the CLI's handlers."""
    data, reference, _ = small_run
    out = tmp_path / "out"
    argv = small_argv(tiny_model_dir, data, out)
    moments = [  # (save point, signal, status, what the line says about resuming)
        (
            ("prediction_step", "", 1),
            signal.SIGTERM,
            143,
            f"to start again in {out} (no checkpoint was complete yet)",
        ),
        (
            ("training_step", "", 2),
            signal.SIGINT,
            130,
            f"it resumes from {out / 'checkpoint-1'}, the last complete",
        ),
        (
            ("open", "trainer_state.json", 2),  # this run resumed at 1: checkpoint-2's, then save_state's
            signal.SIGINT,
            130,
            f"it resumes from {out / 'checkpoint-2'}, the last",
        ),
    ]
    for (writer, name, nth), signum, status, resume in moments:
        counts = collections.Counter()

        def deliver(w, n, path, target=(writer, name, nth), signum=signum, counts=counts):
            counts[w, n] += 1
            if (w, n, counts[w, n]) == target:
                # To this thread, before raise_signal returns; its handler runs at the next bytecode, inside this
                # save point (os.kill to the process could land on another thread, one that blocks nothing).
                signal.raise_signal(signum)

        capsys.readouterr()
        with save_points(out, deliver):
            assert run_verb("train", argv) == status
        err = capsys.readouterr().err
        lines = err.rstrip().splitlines()
        assert "Traceback" not in err and sum(line.startswith("error: ") for line in lines) == 1, err[-2000:]
        kind = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
        assert lines[-1].startswith(f"error: {kind}; rerun the same command") and resume in lines[-1], lines[
            -1
        ]
        assert not run_dir.is_finished(out) and not list(out.rglob(f"*{artifacts.ATOMIC_SUFFIX}"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back
    assert run_verb("train", argv) == 0
    assert_same_results(out, reference)


def test_a_failed_run_leaves_no_folder_holding_only_its_lock(tiny_model_dir, tmp_path, capsys):
    one_class = make_image_folder(tmp_path / "one", WNIDS[:1], train_per_class=4, val_per_class=2, size=16)
    empty_data = tmp_path / "empty"
    empty_data.mkdir()
    existing = tmp_path / "existing"
    existing.mkdir()
    cases = [
        (tmp_path / "new-a", smoke_argv(tiny_model_dir, empty_data, tmp_path / "new-a")),  # no data there
        (tmp_path / "new-b", smoke_argv(tiny_model_dir, one_class, tmp_path / "new-b")),  # one class
        (existing, smoke_argv(tiny_model_dir, empty_data, existing)),  # a folder of the user's: kept, empty
        (tmp_path / "n" / "e" / "w", smoke_argv(tiny_model_dir, empty_data, tmp_path / "n" / "e" / "w")),
    ]
    for (out, argv), verb in zip(cases, ("train", "eval", "train", "eval"), strict=True):
        capsys.readouterr()
        assert run_verb(verb, argv) == 2
        assert capsys.readouterr().err.count("error: ") == 1
        assert not (out / artifacts.RUN_LOCK).exists(), (verb, out)
        assert out.exists() == (out == existing)
    assert list(existing.iterdir()) == []


def _checkpoint(out: Path, step: int, complete: bool) -> None:
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes([step]) * 8)
    if complete:
        run_dir.write_checkpoint_marker(folder, step)


def test_the_resume_hint_names_the_newest_complete_checkpoint_by_number(tmp_path, monkeypatch):
    """checkpoint-9 and -10 complete, -11 half-written (no marker): the rerun resumes from checkpoint-10, not the
    half-written newest nor checkpoint-9 (the last as text)."""
    out = tmp_path / "out"
    for step, complete in ((9, True), (10, True), (11, False)):
        _checkpoint(out, step, complete)
    monkeypatch.setattr(run_dir, "active_run", lambda: {"output_dir": out, "do_train": True, "resume": None})
    status, line = faults.describe(KeyboardInterrupt())
    assert status == 130
    assert line.endswith(f"it resumes from {out / 'checkpoint-10'}, the last complete checkpoint.")


@pytest.mark.parametrize(
    ("free", "start"),
    [
        (faults.LOW_SPACE - 1, "no space left on the device at {} ("),
        (faults.LOW_SPACE, "writing at {} failed ("),
    ],
    ids=["a byte under 64 MiB", "64 MiB"],
)
def test_a_failed_save_is_a_full_disk_below_64_mib_free(free, start, tmp_path, monkeypatch):
    """torch.save's C++ writer gives no errno: what is free on the disk tells a full disk from another failure."""
    assert faults.LOW_SPACE == 64 * 2**20
    run_dir.forget_active()
    real_usage = shutil.disk_usage

    def usage(path):  # the disk of the nearest existing folder: the file's own folder may not exist yet
        real_usage(path)
        return shutil._ntuple_diskusage(2**40, 2**40 - free, free)

    monkeypatch.setattr(faults.shutil, "disk_usage", usage)
    err = RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")
    err.filename = str(tmp_path / "checkpoint-3" / "optimizer.pt")
    status, line = faults.describe(err)
    assert status == 74 and line.startswith(start.format(tmp_path / "checkpoint-3" / "optimizer.pt")), line
    assert ("; 63 MiB free)" in line) == (free < faults.LOW_SPACE), line


def test_a_safetensors_io_error_without_an_errno_is_a_failed_write_and_other_errors_stay_bugs():
    run_dir.forget_active()
    described = faults.describe(
        SafetensorError("Error while serializing: I/O error: failed to fill whole buffer")
    )
    assert described is not None and described[0] == 74 and "SafetensorError" in described[1]
    assert faults.describe(SafetensorError("Error while deserializing header: HeaderTooLarge")) is None


def test_a_runtime_error_from_torch_load_is_no_failed_write():
    """Only torch.save's own frames make a RuntimeError a write failure: torch.load's reading one is a bug."""
    run_dir.forget_active()
    with pytest.raises(RuntimeError) as raised:
        torch.load(io.BytesIO(b"PK\x03\x04 not a zip archive"), weights_only=True)
    assert faults.describe(raised.value) is None
