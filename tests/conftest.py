"""Shared fixtures: a tiny random CLIP, a generated ImageNette-layout image set, and ../shared when it exists.

Everything is built once per test session in a temporary folder, by the same `clip_lora.testing_utils` module `make demo` uses.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from intra-op threads; on 2 CPUs, spinning thread pools cost several-fold (measured
# on this machine). Subprocess runs (torchrun, kill/resume) inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from clip_lora import image_check  # noqa: E402
from clip_lora.testing_utils import build_tiny_clip, make_control_folder, make_image_folder  # noqa: E402
from testing_utils import SHARED, WNIDS, run_trained, save_points, small_argv, smoke_argv  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    """10 ImageNette classes (WordNet folders), 20 train and 10 val images each, one hue per class."""
    return make_image_folder(tmp_path_factory.mktemp("imagenette"), train_per_class=20, val_per_class=10)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "imagenette2-224-sample").is_dir():
        pytest.skip("../shared/data is not here (a fresh clone): real-image tests skipped")
    return SHARED


@pytest.fixture(scope="session")
def control_root(tmp_path_factory) -> Path:
    """The demo's control set: 4 other classes, 10 images each (make_control_folder, as `make demo` writes it)."""
    return make_control_folder(tmp_path_factory.mktemp("control") / "control", seed=1)


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, image_root, control_root, tmp_path_factory):
    """The session's ONE smoke training (shared by every test that needs a trained adapter), run through
    cli() with --push_to_hub to a recording fake Hub and --report_to wandb without credentials: see testing_utils.run_trained.
    With the control set, as `make demo` runs it."""
    tmp = tmp_path_factory.mktemp("trained")
    argv = smoke_argv(tiny_model_dir, image_root, tmp / "out", "--control_eval_dir", str(control_root))
    return run_trained(argv, tmp)


@pytest.fixture()
def image_check_cache(tmp_path, monkeypatch):
    """The image check's verdict cache inside the test's tmp_path (never the user's cache)."""
    monkeypatch.setattr(image_check, "default_cache_dir", lambda: tmp_path / "image-check-cache")


@pytest.fixture(scope="session")
def small_run(tiny_model_dir, tmp_path_factory):
    """(data dir, reference output dir, its save points in order) of one uninterrupted small_argv run (2 classes,
    2 one-step epochs), in-process: the reference every fault test's rerun must reproduce. A save point is
    (writer, file name) for every write into the output dir, or (training_step | prediction_step, "")."""
    import train_clip_lora

    base = tmp_path_factory.mktemp("small-run")
    data = make_image_folder(base / "data", WNIDS[:2], train_per_class=6, val_per_class=3, size=16)
    saves = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(image_check, "default_cache_dir", lambda: base / "image-check-cache")
        with save_points(base / "reference", lambda writer, name, path: saves.append((writer, name))):
            train_clip_lora.main(small_argv(tiny_model_dir, data, base / "reference"))
    return data, base / "reference", saves


@pytest.fixture(scope="session")
def onnx_export(trained_run, tmp_path_factory) -> Path:
    """`clip-lora export --format onnx` (= --onnx) of the session's trained run (no temperature.json: T = 1)."""
    pytest.importorskip(
        "onnxruntime", reason="the onnx extra is not installed: pip install 'clip-lora[onnx]'"
    )
    pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'clip-lora[onnx]'")
    from clip_lora.cli import run as run_verb

    out = tmp_path_factory.mktemp("onnx-export") / "exported"
    argv = [
        "--adapter_name_or_path",
        str(trained_run.output_dir),
        "--output_dir",
        str(out),
        "--format",
        "onnx",
    ]
    assert run_verb("export", argv) == 0
    return out
