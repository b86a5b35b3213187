"""One line for a launched run, whichever process failed: the failing process hands its line to the main process.

    status, line = settle(status, line, err)    # cli.run, for every failure; line None: this process prints nothing

Under torchrun / accelerate launch only the main process prints. A process that failed alone (an image unreadable on
its node, a disk full on its node) used to exit printing nothing, while the main process died inside a collective
with gloo's "Connection closed by peer" traceback, or was torn down by the launcher's SIGTERM: no line named the
cause. Now the failing process leaves its line in the launcher's store (the TCPStore at MASTER_ADDR:MASTER_PORT, kept
by torchrun's agent, which outlives every worker) and the main process, whose own failure is only the echo of it,
prints `error: process 1 of 2 failed: <its line>` with that process's exit status. Where the store cannot be
reached, the failing process prints its line itself, prefixed with its rank. Not launched: nothing changes.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

STORE_TIMEOUT = timedelta(seconds=5)
PEER_WAIT_S = 0.5  # how long the main process looks for a peer's line (written before that peer exits)
PEER_LOST_STATUS = 1
# What gloo and NCCL say when a peer process is gone (the RuntimeError / DistBackendError of the collective).
PEER_LOST_MARKERS = (
    "Connection closed by peer",
    "Connection reset by peer",
    "Broken pipe",
    "NCCL communicator",
)

_store = None


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def release_process_group() -> None:
    """Destroy the default process group while Python is whole (cli.run, after a verb succeeded).

    Left to interpreter shutdown, gloo's worker threads can be torn down while still joinable: `terminate called
    without an active exception`, SIGABRT, and a finished run reported failed by torchrun (pytorch#179291). Not after
    an error: a peer may be gone or hung, and destroying could wait on it. torch is never imported here.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launched() -> bool:
    return _world() > 1 and "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ


def _key(rank: int) -> str:
    # one namespace per launch and restart: a restarted group must not read the last attempt's failures
    run = os.environ.get("TORCHELASTIC_RUN_ID", "-")
    return f"clip_lora/failures/{run}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{rank}"


def _connect():
    global _store
    if _store is None:
        import torch.distributed as dist  # only on a failure under a launcher

        _store = dist.TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            is_master=False,
            timeout=STORE_TIMEOUT,
            wait_for_workers=False,
        )
    return _store


def publish(status: int, line: str) -> bool:
    """Leave this process's failure for the main process; False where the store cannot be reached."""
    try:
        _connect().set(_key(_rank()), f"{status}\t{line}")
    except Exception:  # noqa: BLE001 - a store that is gone only means this process prints its own line
        return False
    return True


def failed_peer(wait_s: float = PEER_WAIT_S) -> tuple[int, int, str] | None:
    """(rank, status, line) of the lowest-ranked other process that published a failure, looked for up to wait_s."""
    others = [rank for rank in range(_world()) if rank != _rank()]
    deadline = time.monotonic() + wait_s
    try:
        store = _connect()
        while True:
            for rank in others:
                if store.check([_key(rank)]):
                    status, line = store.get(_key(rank)).decode("utf-8", "replace").split("\t", 1)
                    return rank, int(status), line
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
    except Exception:  # noqa: BLE001 - no store, no peer's line: this process says what it knows
        return None


def peer_lost(err: BaseException | None) -> bool:
    """A collective failed because another process is gone (gloo / NCCL), in err or what it was raised from."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, RuntimeError) and any(marker in str(err) for marker in PEER_LOST_MARKERS):
            return True
        err = err.__cause__ or err.__context__
    return False


def settle(status: int, line: str | None, err: BaseException | None, echo: bool) -> tuple[int, str | None]:
    """What this process prints (None: nothing) and exits with, for its failure `err` described as (status, line).

    line None: an unexpected exception (a bug; the caller re-raises it, so its traceback is printed here).
    echo: the failure may only be the echo of a peer's (the launcher's SIGTERM, a lost peer).
    """
    if not launched():
        return status, line if _rank() == 0 else None
    if echo or peer_lost(err):
        peer = failed_peer(PEER_WAIT_S if _rank() == 0 else 0.0)
        if peer is not None:
            rank, peer_status, peer_line = peer
            return peer_status, (
                f"process {rank} of {_world()} failed: {peer_line}" if _rank() == 0 else None
            )
        if line is None:  # a peer vanished without a word (SIGKILL, the OOM killer, a segfault)
            status, line = (
                PEER_LOST_STATUS,
                (
                    "another process of this run stopped without a word (killed by a signal: kill -9, the out-of-memory "
                    "killer, a crash); the launcher's summary names its rank. Rerun the same command once it is fixed: a "
                    "training run resumes from its last complete checkpoint."
                ),
            )
        return status, line if _rank() == 0 else f"[rank {_rank()}] {line}"
    shown = f"an unexpected {type(err).__name__} (a bug; its traceback is in this process's output)"
    if not publish(status, line or shown) and _rank() != 0:
        return status, f"[rank {_rank()}] {line}" if line else None
    return status, line if _rank() == 0 else None
