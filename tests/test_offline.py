"""Without a reachable Hub: one request, then the HF cache or one error line, never minutes of retries.

Each case is a fresh process: the Hub endpoint and offline mode are read when huggingface_hub is imported, and the
suite itself runs with HF_HUB_OFFLINE=1 (conftest), which is removed here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading

import huggingface_hub.constants
import pytest

import train_clip_lora
from clip_lora import offline
from testing_utils import ROOT, smoke_argv, user_error

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def _predict(model: str, image, hf_home, endpoint: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=endpoint, PYTHONPATH=str(ROOT))
    argv = [
        sys.executable,
        "-m",
        "clip_lora",
        "predict",
        "--model_name_or_path",
        model,
        "--labels",
        "tench,church",
    ]
    return subprocess.run([*argv, str(image)], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def image(image_root):
    return next((image_root / "val").rglob("*.JPEG"))


def test_unreachable_hub_and_empty_cache_is_one_request_then_one_error_line(tmp_path, image):
    server = socket.create_server(("127.0.0.1", 0))  # accepts and hangs up: every attempt is counted
    connections = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            connections.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        done = _predict(
            "tester/not-cached-clip", image, tmp_path / "hf", f"http://127.0.0.1:{server.getsockname()[1]}"
        )
    finally:
        server.close()
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: cannot load 'tester/not-cached-clip': the Hugging Face Hub"
    )
    assert "cannot be reached" in lines[0] and "not in the HF cache" in lines[0]
    assert len(connections) == 1  # the probe; no retry, no adapter_config.json / config.json requests


def test_unreachable_hub_loads_a_cached_model_from_the_hf_cache(tmp_path, tiny_model_dir, image):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    repo = (
        tmp_path / "hf" / "hub" / "models--tester--tiny-clip"
    )  # the HF cache layout save_pretrained files go in
    shutil.copytree(tiny_model_dir, repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    done = _predict("tester/tiny-clip", image, tmp_path / "hf", f"http://127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert image.name in done.stdout and "tench" in done.stdout
    assert done.stderr.count("comes from the HF cache") == 1 and "Retrying" not in done.stderr


def test_training_fails_before_loading_data_when_the_model_cannot_come(
    tiny_model_dir, image_root, tmp_path, monkeypatch, capsys
):
    """In-process: the Hub already found unreachable (as a probe would), the HF cache empty."""
    monkeypatch.setattr(offline, "_unreachable", "ConnectError: [Errno 111] Connection refused")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(train_clip_lora, "load_splits", lambda **kwargs: pytest.fail("data loaded"))
    argv = smoke_argv(
        tiny_model_dir, image_root, tmp_path / "out", "--model_name_or_path", "tester/not-cached"
    )
    line = user_error(argv, capsys)
    assert line.startswith("error: cannot load 'tester/not-cached': the Hugging Face Hub")
