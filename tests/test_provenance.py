"""What a run records so it can be reproduced and compared: the data fingerprint (counts and a hash of the sorted
(image id, size) list), library versions, the project's commit (none outside a checkout), the batch as it ran; and
the card states them from run_config.json."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

from clip_lora import __version__, artifacts, card_text, provenance
from clip_lora.data import load_splits
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS


def _fingerprint(root, seed=0, ratio=0.2):
    splits = load_splits("imagenette", data_dir=str(root), dev_split_ratio=ratio, seed=seed, download=False)
    return provenance.data_fingerprint(splits), splits


@pytest.mark.parametrize(
    ("classes", "train", "val"), [(2, 5, 2), (10, 20, 10)], ids=["2 classes", "10 classes"]
)
def test_fingerprint_counts_every_split_and_sees_the_same_images_whatever_the_seed(
    tmp_path, classes, train, val
):
    root = make_image_folder(
        tmp_path / "data", WNIDS[:classes], train_per_class=train, val_per_class=val, size=8
    )
    first, splits = _fingerprint(root, seed=0)
    second, _ = _fingerprint(root, seed=1)
    assert {name: s["images"] for name, s in first["splits"].items()} == {
        k: len(v) for k, v in splits.items()
    }
    assert first["images"] == classes * (train + val)
    # Another seed carves another dev split from the same images: same files, different train / dev lists.
    assert (
        first["files_sha256"] == second["files_sha256"] and first["splits"]["val"] == second["splits"]["val"]
    )
    assert first["splits"]["dev"]["sha256"] != second["splits"]["dev"]["sha256"]
    # The same files in another folder are the same data (ids are relative to the data folder).
    moved = shutil.copytree(root, tmp_path / "elsewhere" / "data")
    assert _fingerprint(moved, seed=0)[0] == first


@pytest.mark.parametrize("change", ["one byte more", "renamed", "removed"])
def test_fingerprint_changes_when_one_val_file_does(tmp_path, change):
    root = make_image_folder(tmp_path / "data", WNIDS[:3], train_per_class=4, val_per_class=3, size=8)
    before, _ = _fingerprint(root)
    image = sorted((root / "val" / WNIDS[1]).iterdir())[0]
    if change == "one byte more":
        image.write_bytes(image.read_bytes() + b"\0")  # same name, same pixels: only the size differs
    elif change == "renamed":
        image.rename(image.with_name("x" + image.name))
    else:
        image.unlink()
    after, _ = _fingerprint(root)
    assert after["files_sha256"] != before["files_sha256"]
    assert after["splits"]["val"]["sha256"] != before["splits"]["val"]["sha256"]
    assert (
        after["splits"]["train"] == before["splits"]["train"]
        and after["splits"]["dev"] == before["splits"]["dev"]
    )
    assert after["splits"]["val"]["images"] == before["splits"]["val"]["images"] - (change == "removed")


def _git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_code_version_names_the_commit_of_a_checkout_and_none_elsewhere(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "clip_lora").mkdir(parents=True)
    (project / "setup.cfg").write_text("[metadata]\n")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "x")
    found = provenance.code_version(project)
    assert found["git_commit"] == _git(project, "rev-parse", "HEAD") and found["git_dirty"] is False
    (project / "setup.cfg").write_text("[metadata]\nname = changed\n")
    assert provenance.code_version(project)["git_dirty"] is True
    # An installed copy inside another repository (a venv in a checkout) is not that repository's commit.
    assert provenance.code_version(project / "clip_lora")["git_commit"] is None
    (tmp_path / "plain").mkdir()
    assert provenance.code_version(tmp_path / "plain") == {
        "clip_lora": __version__,
        "git_commit": None,
        "git_dirty": None,
    }
    monkeypatch.setenv("PATH", str(tmp_path / "plain"))  # no git at all: no commit, no crash
    assert provenance.code_version(project)["git_commit"] is None


def test_the_run_records_its_provenance_and_the_card_states_it(trained_run):
    config = artifacts.read_json(trained_run.output_dir / artifacts.RUN_CONFIG)
    record = config["provenance"]
    assert {name: record["versions"][name] for name in provenance.LIBRARIES} == {
        name: metadata.version(name) for name in provenance.LIBRARIES
    }
    batch = record["batch"]
    assert batch["processes"] == 1 and batch["max_grad_norm"] == config["max_grad_norm"]
    assert (batch["per_device_train_batch_size"], batch["gradient_accumulation_steps"]) == (
        config["per_device_train_batch_size"],
        config["gradient_accumulation_steps"],
    )
    assert batch["global_batch_size"] == config["global_batch_size"] == 16  # the smoke recipe's
    labels, _, _ = artifacts.read_predictions(trained_run.output_dir / artifacts.PREDICTIONS)
    splits = record["data"]["splits"]
    assert splits["val"]["images"] == len(labels) and record["data"]["images"] == sum(
        s["images"] for s in splits.values()
    )
    card = ModelCard.load(trained_run.output_dir / "README.md").text
    assert (
        f"| batch | 1 process x {batch['per_device_train_batch_size']} per device x 1 accumulation step = "
        f"global batch {batch['global_batch_size']} |" in card
    )
    assert (
        batch["max_grad_norm"] == 1.0 and "| gradient clipping | max_grad_norm 1 |" in card
    )  # an integer as one
    assert f"torch {record['versions']['torch']}, transformers {record['versions']['transformers']}" in card
    assert (
        f"| data | train {splits['train']['images']}, dev {splits['dev']['images']}, val {splits['val']['images']} "
        f"images; files sha256 `{record['data']['files_sha256'][:16]}`" in card
    )
    commit = record["code"]["git_commit"]
    assert (f"commit `{commit[:12]}`" if commit else "not run from a git checkout") in card


def test_the_recorded_batch_counts_every_process():
    # 3 processes x 4 per device x 2 accumulation: every factor distinct, so a product that leaves one out shows.
    args = SimpleNamespace(
        world_size=3, per_device_train_batch_size=4, gradient_accumulation_steps=2, max_grad_norm=0.5
    )
    batch = provenance.run_provenance(args, "bf16", {"images": 0})["batch"]
    assert batch == {
        "processes": 3,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "global_batch_size": 24,
        "max_grad_norm": 0.5,
        "precision": "bf16",
    }


def test_a_streamed_split_is_recorded_as_streamed_without_counts():
    record = provenance.data_fingerprint({"train": iter([])})  # no length, no files: a stream
    assert record["splits"] == {"train": {"images": None, "sha256": None, "streamed": True}}
    assert record["images"] == 0


def test_a_training_set_that_loses_classes_is_named_in_one_warning_and_on_the_card(
    tiny_model_dir, tmp_path, caplog, image_check_cache
):
    import train_clip_lora
    from testing_utils import smoke_argv

    root = make_image_folder(
        tmp_path / "data", ["ant", "bee", "cat"], train_per_class=4, val_per_class=1, size=16
    )
    out = tmp_path / "out"
    flags = ("--dataset_name", str(root), "--num_train_epochs", "1", "--max_train_samples", "1")
    argv = smoke_argv(tiny_model_dir, root, out, *flags)
    train_clip_lora.main(argv)
    config = artifacts.read_json(out / artifacts.RUN_CONFIG)
    lost = config["provenance"]["data"]["classes_without_training_images"]
    assert len(lost) == 2  # one training image: two of the three classes have none
    warnings = [r.getMessage() for r in caplog.records if "no training image" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"2 classes ({lost[0]!r}, {lost[1]!r}) have no"), (
        warnings
    )
    card = ModelCard.load(out / "README.md").text
    assert (
        f"**2 classes ({lost[0]!r}, {lost[1]!r}) have no training image** (evaluated, never trained on)"
        in card
    )


def test_a_split_with_every_class_names_none_and_a_long_list_stays_one_line(tmp_path):
    root = make_image_folder(tmp_path / "data", WNIDS, train_per_class=4, val_per_class=1, size=8)
    fingerprint, splits = _fingerprint(root, ratio=0.25)
    assert fingerprint["classes_without_training_images"] == []
    names = splits["train"].features["label"].names
    kept = [i for i, label in enumerate(splits["train"]["label"]) if label == 0]
    assert provenance.classes_without_images(splits["train"].select(kept)) == names[1:]
    assert card_text.untrained_text([]) == ""
    many = card_text.lost_classes_line([f"c{i}" for i in range(1000)])
    assert many.startswith("1000 classes ('c0', ") and many.endswith("'c19', and 980 more)")
