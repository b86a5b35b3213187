"""train_clip_lora.main end to end on the tiny CLIP: zero-shot -> LoRA -> selected adapter on val, and eval-only."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from peft import PeftModel

import train_clip_lora
from clip_lora.artifacts import read_predictions
from clip_lora.cli import run as run_verb
from clip_lora.modeling import load_adapter, load_clip
from testing_utils import smoke_argv


@pytest.fixture(scope="module")
def smoke_run(trained_run):
    """The session's one smoke training (conftest.py); it also pushes to a fake Hub and logs to offline wandb."""
    assert trained_run.exit_code == 0
    return trained_run.output_dir, trained_run.results


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_run_learns_and_writes_every_artifact(smoke_run):
    out, results = smoke_run
    for name in [
        "adapter_model.safetensors",
        "adapter_config.json",
        "all_results.json",
        "predictions.csv",
        "zero_shot_predictions.csv",
        "classification_report.json",
        "classification_report.md",
        "run_config.json",
        "trainer_state.json",
    ]:
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "all_results.json").read_text())
    assert on_disk["eval_accuracy"] == results["eval_accuracy"]
    assert results["zero_shot_accuracy"] <= 0.3  # a random tiny CLIP is near chance (0.1)
    assert results["eval_accuracy"] >= 0.9  # LoRA alone lifts it on the generated task
    assert {"dev_accuracy", "dev_macro_f1", "trainable_params", "total_params"} <= set(results)
    assert 0 < results["trainable_params"] < results["total_params"]


# The keys of Trainer.train()'s metrics, which Trainer.save_metrics("train") writes in HF's example scripts
# (transformers 4 adds total_flos).
HF_TRAIN_KEYS = {"epoch", "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second"}


def test_train_and_eval_results_sit_beside_all_results_as_hf_writes_them(smoke_run):
    out, results = smoke_run
    train = json.loads((out / "train_results.json").read_text())
    evaluation = json.loads((out / "eval_results.json").read_text())
    assert set(train) - {"total_flos"} == HF_TRAIN_KEYS
    assert {"eval_accuracy", "eval_loss", "eval_runtime", "eval_samples_per_second", "epoch"} <= set(
        evaluation
    )
    assert all(key.startswith("eval_") for key in evaluation if key != "epoch")
    for key, value in {**train, **evaluation}.items():  # one set of numbers: all_results.json holds them all
        assert results[key] == value, key


def test_an_evaluation_only_run_writes_eval_results_and_no_train_results(
    tiny_model_dir, image_root, tmp_path
):
    assert run_verb("eval", smoke_argv(tiny_model_dir, image_root, tmp_path)) == 0
    evaluation = json.loads((tmp_path / "eval_results.json").read_text())
    assert (
        evaluation["eval_accuracy"]
        == json.loads((tmp_path / "all_results.json").read_text())["eval_accuracy"]
    )
    assert "epoch" not in evaluation and not (tmp_path / "train_results.json").exists()


def test_predictions_and_report_cover_val_once(smoke_run, image_root):
    out, results = smoke_run
    rows = _rows(out / "predictions.csv")
    val_files = sorted(p.relative_to(image_root).as_posix() for p in (image_root / "val").rglob("*.JPEG"))
    assert sorted(r["image"] for r in rows) == val_files
    assert list(rows[0])[:3] == ["image", "label", "prediction"] and len(rows[0]) == 3 + 10
    labels, predictions, _ = read_predictions(out / "predictions.csv")
    assert (labels == predictions).mean() == pytest.approx(results["eval_accuracy"])
    zs_labels, zs_predictions, _ = read_predictions(out / "zero_shot_predictions.csv")
    assert (zs_labels == zs_predictions).mean() == pytest.approx(results["zero_shot_accuracy"])
    report = json.loads((out / "classification_report.json").read_text())
    assert sum(c["support"] for c in report["per_class"].values()) == len(rows)
    assert report["accuracy"] == pytest.approx(results["eval_accuracy"])


def test_selected_epoch_is_the_best_dev_epoch(smoke_run):
    out, results = smoke_run
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    dev = [entry["eval_accuracy"] for entry in history if "eval_accuracy" in entry]
    assert len(dev) == 8 and results["dev_accuracy"] == pytest.approx(max(dev))
    # Learnability within a bounded budget: 8 epochs of 180 images at batch 16 = 96 optimizer steps.
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] <= 96


def test_eval_only_base_model_equals_zero_shot(tiny_model_dir, image_root, tmp_path):
    results = train_clip_lora.main(smoke_argv(tiny_model_dir, image_root, tmp_path, "--do_train", "false"))
    assert results["eval_accuracy"] == results["zero_shot_accuracy"]
    assert (tmp_path / "predictions.csv").read_bytes() == (
        tmp_path / "zero_shot_predictions.csv"
    ).read_bytes()
    assert len(_rows(tmp_path / "predictions.csv")) == 100


def test_eval_only_with_saved_adapter_reproduces_the_run(smoke_run, tiny_model_dir, image_root, tmp_path):
    out, results = smoke_run
    argv = smoke_argv(
        tiny_model_dir, image_root, tmp_path, "--do_train", "false", "--adapter_name_or_path", str(out)
    )
    again = train_clip_lora.main(argv)
    assert again["eval_accuracy"] == results["eval_accuracy"]
    assert again["zero_shot_accuracy"] == results["zero_shot_accuracy"]
    assert (tmp_path / "predictions.csv").read_text() == (out / "predictions.csv").read_text()
    model = load_adapter(load_clip(str(tiny_model_dir))[0], str(out))
    assert isinstance(model, PeftModel)


def test_finished_run_is_not_overwritten_by_accident(smoke_run, tiny_model_dir, image_root):
    out, _ = smoke_run
    assert run_verb("train", smoke_argv(tiny_model_dir, image_root, out)) == 2


def test_zero_shot_on_the_real_imagenette_sample(shared_data, tiny_model_dir, tmp_path):
    argv = smoke_argv(tiny_model_dir, shared_data / "imagenette2-224-sample", tmp_path, "--do_train", "false")
    results = train_clip_lora.main(argv)
    rows = _rows(tmp_path / "predictions.csv")
    assert len(rows) == 300 and results["eval_accuracy"] == results["zero_shot_accuracy"]
    assert {r["label"] for r in rows} == {
        "tench",
        "English springer",
        "cassette player",
        "chain saw",
        "church",
        "French horn",
        "garbage truck",
        "gas pump",
        "golf ball",
        "parachute",
    }


def test_training_starts_from_the_seeded_random_state_whatever_was_evaluated_before(
    tiny_model_dir, tmp_path, monkeypatch
):
    # The zero-shot baseline (here with a second, single-template pass) draws loader seeds from the global RNG;
    # without main()'s fork_rng, dropout in training would depend on how many evaluations ran before it.
    from clip_lora.testing_utils import make_image_folder
    from clip_lora.trainer import ClipLoraTrainer
    from testing_utils import WNIDS, small_argv

    states = {}
    original_init, original_train = ClipLoraTrainer.__init__, ClipLoraTrainer.train

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        states["after set_seed"] = torch.random.get_rng_state()  # Trainer seeds in __init__

    def train(self, *args, **kwargs):
        states["at train"] = torch.random.get_rng_state()
        return original_train(self, *args, **kwargs)

    monkeypatch.setattr(ClipLoraTrainer, "__init__", init)
    monkeypatch.setattr(ClipLoraTrainer, "train", train)
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of a {}.\nart of the {}.\n")
    data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=6, val_per_class=3, size=16)
    train_clip_lora.main(
        small_argv(tiny_model_dir, data, tmp_path / "out", "--prompt_templates", str(templates))
    )
    assert torch.equal(states["at train"], states["after set_seed"])
