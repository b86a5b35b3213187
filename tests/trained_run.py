"""The one smoke training the test session shares (conftest.py's `trained_run` fixture), with every output on.

It runs `train_clip_lora.cli` on the tiny CLIP with `--push_to_hub` and `--report_to wandb` while:
- `hub.hub_api` is a recording fake (whoami / create_repo / create_commit), the project's only Hub boundary;
- Trainer's own `hf_api` raises, and sockets may connect only to this machine (wandb's local service);
- wandb has no credentials and no WANDB_MODE, so the run must go offline by itself;
- the first training step is recorded, so tests can check that auth came before it.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

import hub
import train_clip_lora
from trainer import ClipLoraTrainer

HUB_MODEL_ID = "tester/clip-lora-tiny"
WRITE_WHOAMI = {"name": "tester", "orgs": [], "auth": {"accessToken": {"displayName": "ci", "role": "write"}}}
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class Run:
    output_dir: Path
    results: dict
    exit_code: int
    events: list = field(default_factory=list)  # ("whoami"|"create_repo"|"train_step"|"create_commit"|..., details)
    stderr: str = ""
    wandb_dir: Path | None = None


class FakeHubApi:
    """Records every call; `whoami` answers `whoami_answer` (or raises it when it is an exception)."""

    def __init__(self, events: list, whoami_answer=None):
        self.events = events
        self.whoami_answer = WRITE_WHOAMI if whoami_answer is None else whoami_answer

    def whoami(self, token=None, **kwargs):
        self.events.append(("whoami", {"token": token}))
        if isinstance(self.whoami_answer, Exception):
            raise self.whoami_answer
        return self.whoami_answer

    def create_repo(self, repo_id, **kwargs):
        self.events.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return SimpleNamespace(repo_id=repo_id)

    def create_commit(self, repo_id, operations, **kwargs):
        files = {op.path_in_repo: Path(op.path_or_fileobj) for op in operations}
        self.events.append(("create_commit", {"repo_id": repo_id, "files": files, **kwargs}))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")


def guard_network(monkeypatch, events: list) -> None:
    """Sockets may reach this machine only; any other connect is recorded and refused."""
    original = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family != socket.AF_UNIX and host not in LOCAL_HOSTS:
            events.append(("network", address))
            raise OSError(f"test: network access to {address} refused")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)

    def trainer_hf_api(*args, **kwargs):
        events.append(("trainer_hf_api", args))
        raise AssertionError("Trainer must not talk to the Hub itself")

    monkeypatch.setattr("transformers.trainer.hf_api", trainer_hf_api)


def record_training_steps(monkeypatch, events: list) -> None:
    original = ClipLoraTrainer.training_step

    def training_step(self, *args, **kwargs):
        if not any(kind == "train_step" for kind, _ in events):
            events.append(("train_step", self.state.global_step))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClipLoraTrainer, "training_step", training_step)


def no_wandb_credentials(monkeypatch, tmp: Path) -> Path:
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp / "no-netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp))
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # wandb must not wrap pytest's stdout/stderr
    return tmp


class _Tee(io.StringIO):
    def write(self, text):
        sys.__stderr__.write(text)
        return super().write(text)


def run(argv: list[str], tmp: Path) -> Run:
    """cli(argv + push + wandb) under the fakes; the environment is restored afterwards."""
    import artifacts

    events: list = []
    wandb_dir = tmp / "wandb-dir"
    wandb_dir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", "hf_test_token")
        mp.setattr(hub, "hub_api", lambda token=None: FakeHubApi(events))
        guard_network(mp, events)
        record_training_steps(mp, events)
        no_wandb_credentials(mp, wandb_dir)
        stderr = _Tee()
        with contextlib.redirect_stderr(stderr):
            code = train_clip_lora.cli(
                [*argv, "--push_to_hub", "true", "--hub_model_id", HUB_MODEL_ID, "--report_to", "wandb"]
            )
    out = Path(argv[argv.index("--output_dir") + 1])
    results = artifacts.read_json(out / artifacts.ALL_RESULTS) if code == 0 else {}
    return Run(out, results, code, events, stderr.getvalue(), wandb_dir)
