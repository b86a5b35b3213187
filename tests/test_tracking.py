"""wandb: without credentials the run goes offline with one notice (never a prompt), and logs what a user looks at."""

from __future__ import annotations

import os

import pytest

from clip_lora import tracking


def test_shared_run_went_offline_with_one_notice_and_exit_0(trained_run):
    assert trained_run.exit_code == 0
    notices = [line for line in trained_run.stderr.splitlines() if line.startswith("wandb: no credentials")]
    assert len(notices) == 1 and "logging offline" in notices[0]


def test_offline_run_dir_holds_the_logged_keys(trained_run):
    runs = list((trained_run.wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = runs[0]
    (records,) = run.glob("run-*.wandb")
    raw = records.read_bytes()
    # Trainer's callback: training loss and per-epoch dev metrics; ours: zero-shot, val, dev, table, matrices.
    for key in [
        "train/loss",
        "eval/accuracy",
        "zero_shot/accuracy",
        "val/accuracy",
        "val/macro_f1",
        "dev/accuracy",
        "val/per_class",
        "val/confusion_matrix",
        "zero_shot/confusion_matrix",
    ]:
        assert key.encode() in raw, key
    (table,) = (run / "files" / "media" / "table").rglob("*.table.json")
    text = table.read_text()
    assert '"precision"' in text and "English springer" in text
    assert len(list((run / "files" / "media" / "images").rglob("*.png"))) == 2


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path


def test_no_credentials_no_mode_goes_offline_with_one_line(clean_env, capsys):
    assert tracking.prepare(["wandb"]) is True
    assert os.environ["WANDB_MODE"] == "offline"
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "offline" in err


@pytest.mark.parametrize("setting", ["mode", "api_key", "netrc", "not_wandb"])
def test_credentials_mode_or_other_trackers_are_left_alone(setting, clean_env, monkeypatch, capsys):
    report_to = ["tensorboard"] if setting == "not_wandb" else ["wandb"]
    if setting == "mode":
        monkeypatch.setenv("WANDB_MODE", "disabled")
    if setting == "api_key":
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    if setting == "netrc":
        (clean_env / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert tracking.prepare(report_to) is False
    assert os.environ.get("WANDB_MODE") == ("disabled" if setting == "mode" else None)
    assert capsys.readouterr().err == ""
