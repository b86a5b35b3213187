"""The installed project: four top-level names, packaged recipes/configs, and commands that work from any folder.

Builds the wheel once (pip, no network: --no-build-isolation), installs it with --target into a temp folder and runs
the commands from a folder holding data/, images/, metrics/ and trainer/ directories (names that used to collide).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from clip_lora.modeling import apply_lora, load_clip
from testing_utils import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        str(ROOT),
        "-w",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return next(out.glob("clip_lora-*.whl"))


def test_wheel_installs_only_the_four_project_names(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info" not in name.split("/")[0]}
    assert top_level == {"clip_lora", "train_clip_lora.py", "collator.py", "metrics.py"}
    assert {
        "clip_lora/recipes/smoke.yaml",
        "clip_lora/recipes/imagenette_vitb16.yaml",
        "clip_lora/accelerate_configs/1gpu.yaml",
        "clip_lora/accelerate_configs/multi_gpu.yaml",
    } <= set(names)
    assert not any(name.startswith("clip_lora/tests") or name.startswith("tests/") for name in names)


def test_installed_commands_work_from_a_folder_with_colliding_names(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp_path / "work"
    for name in ("data", "images", "metrics", "trainer", "clip_lora_unrelated"):
        (work / name).mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    for argv in (
        ["-m", "clip_lora", "--help"],
        ["-m", "clip_lora", "train", "--help"],
        ["-m", "clip_lora", "predict", "--help"],
        ["-c", "import train_clip_lora, clip_lora.data"],
    ):
        out = subprocess.run(
            [sys.executable, *argv], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, (argv, out.stderr[-2000:])
    out = subprocess.run(
        [sys.executable, "-m", "clip_lora", "config", "1gpu"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip().startswith(str(site)), "the packaged config comes from the installed wheel"


def test_a_local_base_model_is_recorded_by_absolute_path(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_model_dir.parent)
    model, _ = load_clip(tiny_model_dir.name)  # relative to the current folder, as the demo recipe writes it
    model = apply_lora(model, 2, 4, 0.0, ["q_proj"])
    model.save_pretrained(tmp_path / "adapter")
    monkeypatch.chdir("/")
    recorded = model.peft_config["default"].base_model_name_or_path
    assert recorded == str(tiny_model_dir.resolve())
    assert (
        '"base_model_name_or_path": "' + recorded + '"'
        in (tmp_path / "adapter" / "adapter_config.json").read_text()
    )
