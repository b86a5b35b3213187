"""--push_to_hub: auth and write access are checked before training; one commit of exactly the files a user needs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import train_clip_lora
from clip_lora import hub
from clip_lora.cli import run as run_verb
from testing_utils import HUB_MODEL_ID, FakeHubApi, smoke_argv

EXPECTED_FILES = {
    "adapter_config.json",
    "adapter_model.safetensors",
    "README.md",
    "all_results.json",
    "train_results.json",  # beside all_results.json, as HF's example scripts push them
    "eval_results.json",
    "classification_report.json",
    "classification_report.md",
    "training_curves.png",
    "confusion_matrix.png",
    "zero_shot_confusion_matrix.png",
    "changes.png",
    "temperature.json",  # the T fitted on dev: predict and export read it from the hub repo too
    "calibration.json",
    "reliability.png",
    "control.json",  # the demo run has a control set (no --wise_alphas: no trade-off plot)
}


def _kinds(events):
    return [kind for kind, _ in events]


def test_push_commits_exactly_adapter_card_report_and_plots(trained_run):
    assert trained_run.exit_code == 0
    commits = [details for kind, details in trained_run.events if kind == "create_commit"]
    assert len(commits) == 1
    commit = commits[0]
    assert commit["repo_id"] == HUB_MODEL_ID
    assert set(commit["files"]) == EXPECTED_FILES
    for name, path in commit["files"].items():
        assert path == trained_run.output_dir / name and path.is_file()
    # Checkpoints (with optimizer state) stay local; they exist, so the filter is what kept them out.
    assert any(trained_run.output_dir.glob("checkpoint-*/optimizer.pt"))


def test_auth_is_checked_before_the_first_training_step_and_nothing_else_touches_the_network(trained_run):
    kinds = _kinds(trained_run.events)
    assert kinds == ["whoami", "create_repo", "train_step", "create_commit"]
    create_repo = dict(trained_run.events)["create_repo"]
    assert create_repo["repo_id"] == HUB_MODEL_ID and create_repo["exist_ok"] is True
    assert "network" not in kinds and "trainer_hf_api" not in kinds  # Trainer never created or pushed a repo


def test_pushed_card_loads_the_adapter_from_the_hub_id(trained_run):
    card = (trained_run.output_dir / "README.md").read_text()
    assert f'"{HUB_MODEL_ID}"' in card and "library_name: peft" in card


@pytest.mark.parametrize(
    "whoami, message",
    [
        (
            {"name": "tester", "orgs": [], "auth": {"accessToken": {"displayName": "ro", "role": "read"}}},
            "read-only",
        ),
        (OSError("401 Client Error: Invalid user token."), "Invalid user token"),
    ],
)
def test_failing_auth_stops_the_run_before_data_model_or_training(
    whoami, message, tiny_model_dir, image_root, tmp_path, monkeypatch, capsys
):
    events = []
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(hub, "hub_api", lambda token=None: FakeHubApi(events, whoami))
    monkeypatch.setattr(train_clip_lora, "load_splits", lambda **kw: pytest.fail("data was loaded"))
    argv = smoke_argv(
        tiny_model_dir, image_root, tmp_path / "out", "--push_to_hub", "true", "--hub_model_id", "x"
    )
    assert run_verb("train", argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert "Traceback" not in err[0]
    assert _kinds(events) == ["whoami"]  # no repo created
    assert not (tmp_path / "out" / "run_config.json").exists()


def test_no_token_at_all_says_how_to_log_in(tiny_model_dir, image_root, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(
        "huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token")
    )  # no `hf auth login`
    monkeypatch.setattr(hub, "hub_api", lambda token=None: pytest.fail("the Hub was called without a token"))
    argv = smoke_argv(tiny_model_dir, image_root, tmp_path / "out", "--push_to_hub", "true")
    assert run_verb("train", argv) == 2
    assert "hf auth login" in capsys.readouterr().err


def test_push_without_training_is_refused_before_the_hub_is_asked(monkeypatch):
    monkeypatch.setattr(hub, "hub_api", lambda token=None: pytest.fail("the Hub was called"))
    with pytest.raises(hub.HubError, match="--do_train false"):
        hub.check_write_access(SimpleNamespace(do_train=False, hub_token="t"))


def _whoami(role="write", scoped=(), orgs=()):
    access = {"displayName": "t", "role": role}
    if role == "fineGrained":
        access["fineGrained"] = {"scoped": list(scoped)}
    return {"name": "me", "orgs": list(orgs), "auth": {"accessToken": access}}


def test_write_access_rules():
    assert hub._can_write(_whoami(), "me/model") is None
    assert "read-only" in hub._can_write(_whoami("read"), "me/model")
    write_me = {"entity": {"type": "user", "name": "me"}, "permissions": ["repo.content.read", "repo.write"]}
    read_me = {"entity": {"type": "user", "name": "me"}, "permissions": ["repo.content.read"]}
    assert hub._can_write(_whoami("fineGrained", [write_me]), "me/model") is None
    assert "repo.write" in hub._can_write(_whoami("fineGrained", [read_me]), "me/model")
    assert "not a member" in hub._can_write(_whoami(), "acme/model")
    assert hub._can_write(_whoami(orgs=[{"name": "acme", "roleInOrg": "write"}]), "acme/model") is None
    assert "role 'read'" in hub._can_write(
        _whoami(orgs=[{"name": "acme", "roleInOrg": "read"}]), "acme/model"
    )


def test_trainer_gets_push_off_while_the_users_flag_is_kept():
    args = SimpleNamespace(push_to_hub=True, hub_model_id="me/x")
    trainer_args = hub.without_trainer_push(args)
    assert (
        trainer_args.push_to_hub is False and args.push_to_hub is True and trainer_args.hub_model_id == "me/x"
    )


def test_failed_upload_keeps_the_run_and_prints_a_retry_command(trained_run, monkeypatch):
    class Broken(FakeHubApi):
        def create_commit(self, *args, **kwargs):
            raise ConnectionError("connection reset")

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(hub, "hub_api", lambda token=None: Broken([]))
    args = SimpleNamespace(hub_token=None, hub_revision=None)
    with pytest.raises(hub.HubError, match=r"connection reset.*hf upload tester/clip-lora-tiny"):
        hub.push_run(trained_run.output_dir, HUB_MODEL_ID, args)
