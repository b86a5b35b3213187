"""cli: one command with verbs, one place that turns a ClipLoraError into `error: ...` and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clip_lora import cli, errors
from clip_lora.resources import accelerate_config_path, recipe_path


def test_every_user_error_class_derives_from_the_base():
    user_errors = [
        cls for cls in vars(errors).values() if isinstance(cls, type) and cls.__name__.endswith("Error")
    ]
    assert {cls.__name__ for cls in user_errors} >= {
        "ArgumentError",
        "DataError",
        "ModelError",
        "PromptError",
        "HubError",
        "PredictError",
    }
    assert all(issubclass(cls, errors.ClipLoraError) for cls in user_errors)


def test_help_lists_every_verb(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {verb} " in out for verb in cli.VERBS)


def test_no_verb_is_a_usage_error(capsys):
    assert cli.main([]) == 2


def test_unknown_verb_is_one_error_line(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown verb 'trian'; choose one of train, eval")


@pytest.mark.parametrize("verb", ["predict", "export", "sweep", "config", "app", "env"])
def test_bad_flags_of_every_verb_are_one_error_line(verb, capsys):
    assert cli.main([verb, "--no_such_flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"clip-lora {verb} --help" in err[0]


def test_only_the_main_process_prints_errors(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    assert cli.main(["config", "no-such-config"]) == 2
    assert capsys.readouterr().err == ""


def test_config_verb_prints_a_packaged_config_path(capsys):
    assert cli.main(["config", "1gpu"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("clip_lora/accelerate_configs/1gpu.yaml") and Path(path).read_text().startswith("#")


def test_recipes_and_configs_by_name_or_path(tmp_path, monkeypatch):
    assert recipe_path("smoke").name == "smoke.yaml" and recipe_path("smoke.yaml").name == "smoke.yaml"
    assert accelerate_config_path("multi_gpu").name == "multi_gpu.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke.yaml").write_text("num_train_epochs: 1\n")
    assert (
        recipe_path("smoke.yaml").resolve() == tmp_path / "smoke.yaml"
    )  # a file in the current folder wins over the packaged recipe of the same name
    with pytest.raises(errors.ArgumentError, match="no recipe 'nope.yaml'.*smoke"):
        recipe_path("nope.yaml")


def test_python_dash_m_is_the_same_command():
    out = subprocess.run(
        [sys.executable, "-m", "clip_lora", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "verbs:" in out.stdout


def test_a_finished_verb_releases_the_process_group_and_a_failed_one_leaves_it(tmp_path, capsys):
    # Left to interpreter shutdown, gloo's threads could abort a finished torchrun run (SIGABRT, exit 1).
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert cli.run("config", ["no-such-config"]) == 2
        assert dist.is_initialized()  # after an error a peer may be gone: nothing waits on it
        assert cli.run("config", []) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
