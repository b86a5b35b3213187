"""Tests for download.py through data.load_splits: fetch once, verify MD5, extract safely, refuse unsafe archives.

Run: python -m pytest tests/test_download.py -q   (local archives and a loopback HTTP server; no internet)
"""

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import datasets
import pytest

from clip_lora import data, download
from clip_lora.data import DataError, load_splits
from testing_utils import WNIDS, make_layout, tar_dir, unsafe_archive


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """A small imagenette2-320.tgz, registered in IMAGENETTE_ARCHIVES with its real md5; returns its path."""
    make_layout(tmp_path / "src" / "imagenette2-320", WNIDS, n_train=3, n_val=1)
    tgz = tmp_path / "imagenette2-320.tgz"
    md5 = tar_dir(tmp_path / "src", tgz)
    monkeypatch.setitem(data.IMAGENETTE_ARCHIVES, "320", ("https://example.invalid/imagenette2-320.tgz", md5))
    return tgz


@pytest.fixture
def fake_download(monkeypatch):
    """Replaces the network download: copies the file named by `source` into cache_dir; counts calls."""
    state = {"calls": 0, "source": None}

    def download(url, cache_dir):
        state["calls"] += 1
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        return shutil.copy(state["source"], Path(cache_dir) / Path(url).name)

    monkeypatch.setattr(data, "download_file", download)
    return state


# ---------------------------------------------------------------- download, verify, extract
def test_download_extracts_once_and_loads(tmp_path, archive, fake_download):
    fake_download["source"] = archive
    data_dir = tmp_path / "cache"
    first = load_splits("imagenette", data_dir=str(data_dir), dev_split_ratio=0.34, imagenette_size="320")
    second = load_splits("imagenette", data_dir=str(data_dir), dev_split_ratio=0.34, imagenette_size="320")
    assert fake_download["calls"] == 1
    assert (data_dir / "imagenette2-320" / download.COMPLETE_MARKER).exists()
    assert not list(data_dir.glob(".extract-*"))
    assert len(first["train"]) + len(first["dev"]) == 30 and len(first["val"]) == 10
    assert first["val"]["image_id"] == second["val"]["image_id"]
    assert first["val"]["image_id"][0] == "val/n01440764/0.JPEG"


def test_download_md5_mismatch(tmp_path, archive, fake_download, monkeypatch):
    fake_download["source"] = archive
    monkeypatch.setitem(
        data.IMAGENETTE_ARCHIVES, "320", ("https://example.invalid/imagenette2-320.tgz", "0" * 32)
    )
    with pytest.raises(DataError, match="delete it and rerun") as err:
        load_splits("imagenette", data_dir=str(tmp_path / "cache"), imagenette_size="320")
    assert "0" * 32 in str(err.value) and hashlib.md5(archive.read_bytes()).hexdigest() in str(err.value)
    assert not (tmp_path / "cache" / "imagenette2-320").exists()


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_unsafe_archive_refused_and_nothing_written_outside(tmp_path, fake_download, monkeypatch, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    tgz = tmp_path / "imagenette2-320.tgz"
    md5 = unsafe_archive(tgz, kind, outside)
    monkeypatch.setitem(data.IMAGENETTE_ARCHIVES, "320", ("https://example.invalid/imagenette2-320.tgz", md5))
    fake_download["source"] = tgz
    data_dir = (
        tmp_path / "a" / "cache"
    )  # '../../outside' from the extract folder would land in tmp_path/outside
    with pytest.raises(DataError, match="unsafe archive"):
        load_splits("imagenette", data_dir=str(data_dir), imagenette_size="320")
    assert list(outside.iterdir()) == []
    assert not (data_dir / "imagenette2-320").exists() and not list(data_dir.glob(".extract-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "imagenette2-320.tgz", "outside"]


def test_damaged_archive(tmp_path, fake_download, monkeypatch):
    tgz = tmp_path / "imagenette2-320.tgz"
    tgz.write_bytes(b"\x1f\x8b not really gzip")
    md5 = hashlib.md5(tgz.read_bytes()).hexdigest()
    monkeypatch.setitem(data.IMAGENETTE_ARCHIVES, "320", ("https://example.invalid/imagenette2-320.tgz", md5))
    fake_download["source"] = tgz
    with pytest.raises(DataError, match="damaged.*delete it and rerun") as err:
        load_splits("imagenette", data_dir=str(tmp_path / "cache"), imagenette_size="320")
    assert "\n" not in str(err.value) and not (tmp_path / "cache" / "imagenette2-320").exists()


def test_real_downloader_fetches_over_http(tmp_path, archive, monkeypatch):
    """The datasets download machinery against a local HTTP server (no internet needed)."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # conftest turns offline mode on
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
        monkeypatch.setitem(data.IMAGENETTE_ARCHIVES, "320", (url, data.IMAGENETTE_ARCHIVES["320"][1]))
        splits = load_splits(
            "imagenette", data_dir=str(tmp_path / "cache"), dev_split_ratio=0.34, imagenette_size="320"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert len(splits["val"]) == 10
    assert list((tmp_path / "cache" / "downloads").glob("*.incomplete")) == []


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # refuses before touching the network
    with pytest.raises(DataError, match="could not download .*imagenette2-160.tgz") as err:
        load_splits("imagenette", data_dir=str(tmp_path), imagenette_size="160")
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
