"""Faults from below: what a run says when the machine or the operator stops it, not the user's input.

    with stop_requests():               # Ctrl-C and SIGTERM unwind the run (cli.run)
        ...
    status, line = describe(err)        # None for an exception that is a bug (cli.run re-raises it: a traceback)

`clip_lora.cli.run` is the boundary that calls this; each family is one line that says what happened, where, and
what to do, and has its own exit status:

| family | raised by | status | why that status |
|---|---|---|---|
| bad input | ClipLoraError | 2 | argparse's code for usage errors: change the command or its files |
| unsafe pickle | pickle.UnpicklingError (torch.load weights_only refusing a checkpoint's RNG/optimizer state) | 2 | the checkpoint is an input the user must remove |
| a write failed | OSError ENOSPC/EDQUOT/EFBIG, torch.save's RuntimeError, a Rust writer's `(os error 28)` (safetensors, tokenizers) | 74 | sysexits EX_IOERR: an I/O error; rerunning after freeing space works |
| cannot write there | OSError EROFS/EACCES/EPERM | 73 | sysexits EX_CANTCREAT: the output cannot be created in that place |
| wrong kind of path | OSError EISDIR/ENOTDIR (a folder where a file goes, a file where a folder goes) | 73 | the same: that place cannot hold the output |
| interrupted | KeyboardInterrupt (Ctrl-C, SIGINT) | 130 | 128 + SIGINT, what shells report for Ctrl-C |
| terminated | SIGTERM (a scheduler's stop, torchrun tearing down) | 143 | 128 + SIGTERM, the same convention |

A training run stays resumable in each case (a checkpoint counts only once its `.complete` marker exists;
artifacts are written whole or not at all), so the line names the last complete checkpoint and says that rerunning
the same command resumes from it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import shutil
import signal
from pathlib import Path

from clip_lora import artifacts, run_dir

EX_CANTCREAT, EX_IOERR = 73, 74  # sysexits.h
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
CANNOT_WRITE = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
}
# A path of the wrong kind (a folder replaced a report file mid-run, a file stands where a folder goes): the line
# names the path, and the atomic write left that folder or file as it was.
WRONG_KIND = {
    errno.EISDIR: ("a folder is where a file goes", "move or remove that folder"),
    errno.ENOTDIR: ("a file is where a folder goes on the path", "move or remove that file"),
}
LOW_SPACE = 64 * 2**20  # free bytes under which a failed write is reported as a full disk
ATOMIC_TEMP = re.compile(r"\.\d+" + re.escape(artifacts.ATOMIC_SUFFIX) + "$")  # artifacts.atomic_write's temp
OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")  # how Rust's std::io::Error names the errno
TORCH_SAVE = os.path.join("torch", "serialization.py")  # torch.save's frames: its C++ writer's RuntimeErrors


class Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt: not an error, a request to stop
    """SIGTERM, turned into an exception so the run unwinds (temp files removed) and says where it stopped."""


_pending: type[BaseException] | None = None  # a stop requested by a signal and not yet acted on


def _handler(kind: type[BaseException]):
    def handle(signum, frame):
        global _pending
        _pending = kind
        while (
            frame is not None
        ):  # inside a __del__ Python would print the exception and go on: the next step raises
            if frame.f_code.co_name == "__del__":
                return
            frame = frame.f_back
        raise kind

    return handle


def raise_if_stopped() -> None:
    """At a safe point (every training and prediction step): a stop requested while its exception could not be
    raised (the signal landed inside a __del__, where Python would print "Exception ignored" and go on)."""
    if _pending is not None:
        raise _pending


@contextlib.contextmanager
def stop_requests():
    """Within: Ctrl-C and SIGTERM unwind the run as exceptions (KeyboardInterrupt, Terminated), so temp files are
    removed and the boundary can say where the run stopped. Only where nobody else handles them (the main thread,
    Python's default handlers); the previous handlers are back afterwards."""
    global _pending
    _pending = None
    wanted = {
        signal.SIGINT: (signal.default_int_handler, KeyboardInterrupt),
        signal.SIGTERM: (signal.SIG_DFL, Terminated),
    }
    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        for signum, (default, kind) in wanted.items():
            if signal.getsignal(signum) is default:
                previous[signum] = signal.signal(signum, _handler(kind))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pending = None


@contextlib.contextmanager
def saying_why():
    """Within: the error line of a run that is already stopping is written whole. A second Ctrl-C, or the launcher's
    SIGTERM to a process whose peer failed, would otherwise kill it before its line (the first one's handler is
    gone once the run unwound). Only in the main thread; the previous handlers are back afterwards."""
    previous = {}
    with contextlib.suppress(ValueError):
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _errno_of(err: BaseException) -> int | None:
    """The errno of an OSError, or the one a Rust library's I/O error names (safetensors, tokenizers: "... (os error
    28)", raised as SafetensorError or a bare Exception)."""
    if isinstance(err, OSError) and err.errno is not None:
        return err.errno
    match = OS_ERROR_CODE.search(str(err)) if isinstance(err, Exception) else None
    return int(match.group(1)) if match else None


def _failed_save(err: BaseException) -> bool:
    """A write error torch.save or safetensors reports without an errno: torch's C++ writer raises RuntimeError
    ("[enforce fail at inline_container.cc] ... unexpected pos", "basic_ios::clear: iostream error", ...)."""
    if type(err).__name__ == "SafetensorError":
        return "I/O error" in str(err)
    if not isinstance(err, RuntimeError):
        return False
    if "inline_container.cc" in str(err):
        return True
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(TORCH_SAVE) and tb.tb_frame.f_code.co_name in (
            "save",
            "_save",
        ):
            return True
        tb = tb.tb_next
    return False


def resume_clause() -> str:
    """What rerunning the same command does for the run in progress (its output dir from run_dir.prepare)."""
    active = run_dir.active_run()
    if active is None:
        return "rerun the same command (nothing was left half-written)"
    out = artifacts.escape_path(active["output_dir"])
    if not active["do_train"]:
        return f"rerun the same command to evaluate again into {out}"
    checkpoint = run_dir.last_complete_checkpoint(active["output_dir"])
    if checkpoint is None:
        return f"rerun the same command to start again in {out} (no checkpoint was complete yet)"
    return f"rerun the same command: it resumes from {artifacts.escape_path(checkpoint)}, the last complete checkpoint"


def _file(err: BaseException) -> Path | None:
    name = getattr(err, "filename", None)
    if name:  # an atomic write's temp file is shown as the file it was writing
        return Path(ATOMIC_TEMP.sub("", os.fsdecode(name)))
    active = run_dir.active_run()
    return active["output_dir"] if active else None


def _folder(err: BaseException) -> str:
    path = _file(err)
    if path is None:
        return "the output folder"
    return artifacts.escape_path(path if getattr(err, "filename", None) is None else path.parent)


def _where(err: BaseException) -> str:
    path = _file(err)
    return f" at {artifacts.escape_path(path)}" if path is not None else ""


def _free_bytes(err: BaseException) -> int | None:
    path = _file(err)
    while path is not None and not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free if path is not None else None
    except OSError:
        return None


def _unsafe_pickle(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    unsupported = next(
        (line for line in lines if "Unsupported" in line), None
    )  # what torch refused, e.g. a global
    detail = (
        unsupported[unsupported.index("Unsupported") :] if unsupported else (lines or ["UnpicklingError"])[0]
    )
    active = run_dir.active_run()
    resume = active.get("resume") if active else None
    if resume:
        shown = artifacts.escape_path(resume)
        older = run_dir.last_complete_checkpoint(active["output_dir"], before=resume)
        then = f"the rerun resumes from {artifacts.escape_path(older)}" if older else "the rerun starts again"
        return (
            f"{shown} holds a pickle that torch.load(weights_only=True) refuses ({detail[:160]}): this project's "
            f"training did not write it, and it could run code; delete {shown} ({then}), or pass "
            "--overwrite_output_dir to start over."
        )
    return f"refusing to load a pickle that torch.load(weights_only=True) refuses ({detail[:160]}); it could run code."


def _write_failed(cause: BaseException) -> str:
    free = _free_bytes(cause)
    what = f"{type(cause).__name__}: {' '.join(str(cause).split())[:120]}"
    if free is not None and free < LOW_SPACE:
        return (
            f"no space left on the device{_where(cause)} ({what}; {free // 2**20} MiB free); free space on the disk "
            f"holding {_folder(cause)} (or choose another folder), then {resume_clause()}."
        )
    return f"writing{_where(cause)} failed ({what}); check the disk holding {_folder(cause)}, then {resume_clause()}."


def describe(err: BaseException) -> tuple[int, str] | None:
    """(exit status, one line) for a fault of the families above; None for anything else (a bug: a traceback)."""
    if isinstance(err, KeyboardInterrupt):
        return 130, f"interrupted (Ctrl-C); {resume_clause()}."
    if isinstance(err, Terminated):
        return 143, f"terminated (SIGTERM); {resume_clause()}."
    for cause in _chain(err):
        if isinstance(cause, pickle.UnpicklingError):
            return 2, _unsafe_pickle(cause)
        code = _errno_of(cause)
        if code in NO_SPACE:
            return EX_IOERR, (
                f"no space left on the device{_where(cause)} ({errno.errorcode.get(code, code)}); free space on "
                f"the disk holding {_folder(cause)} (or choose another folder), then {resume_clause()}."
            )
        if code in CANNOT_WRITE:
            return EX_CANTCREAT, (
                f"{CANNOT_WRITE[code]}{_where(cause)} ({errno.errorcode[code]}); make {_folder(cause)} writable "
                f"or choose another folder, then {resume_clause()}."
            )
        if code in WRONG_KIND:
            what, fix = WRONG_KIND[code]
            return EX_CANTCREAT, (
                f"{what}{_where(cause)} ({errno.errorcode[code]}); {fix} (or choose another folder), then "
                f"{resume_clause()}."
            )
        if _failed_save(cause):
            return EX_IOERR, _write_failed(cause)
    return None
