"""The entry's selection and evaluation steps, by the image ids each evaluation saw: every per-epoch evaluation (the
one that picks the epoch) and the reported dev metrics see exactly the dev split, never a val image; the zero-shot
baseline and the final evaluation see exactly val; --seed and --dev_split_ratio decide the dev split."""

from __future__ import annotations

import json

import datasets
import pytest

import train_clip_lora
from clip_lora.data import load_splits
from clip_lora.trainer import ClipLoraTrainer
from testing_utils import smoke_argv

SEED, RATIO, EPOCHS = 3, 0.15, 2


def _ids(dataset) -> list[str]:
    # The splits carry a pixel transform by now; the raw rows still hold image_id.
    return list(dataset.with_format(None)["image_id"])


@pytest.fixture(scope="module")
def recorded_run(tiny_model_dir, image_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("selection") / "run"
    seen: list[tuple[str, str, list[str]]] = []
    evaluate, predict = ClipLoraTrainer.evaluate, ClipLoraTrainer.predict

    def recording_evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        seen.append(("evaluate", metric_key_prefix, _ids(dataset)))
        return evaluate(self, eval_dataset, ignore_keys, metric_key_prefix)

    def recording_predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        seen.append(("predict", metric_key_prefix, _ids(test_dataset)))
        return predict(self, test_dataset, ignore_keys, metric_key_prefix)

    argv = smoke_argv(
        tiny_model_dir,
        image_root,
        out,
        *("--num_train_epochs", str(EPOCHS), "--max_train_samples", "40", "--seed", str(SEED)),
        *("--dev_split_ratio", str(RATIO), "--save_total_limit", "1"),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", out.parent / "hf-datasets")
        patch.setattr(ClipLoraTrainer, "evaluate", recording_evaluate)
        patch.setattr(ClipLoraTrainer, "predict", recording_predict)
        results = train_clip_lora.main(argv)
    expected = load_splits(
        "imagenette", data_dir=str(image_root), dev_split_ratio=RATIO, seed=SEED, download=False
    )
    return out, results, seen, expected


def test_every_per_epoch_evaluation_saw_exactly_the_dev_ids(recorded_run):
    _, _, seen, expected = recorded_run
    dev, val = list(expected["dev"]["image_id"]), list(expected["val"]["image_id"])
    assert len(dev) == round(RATIO * 200) and not set(dev) & set(val)
    per_epoch = [ids for kind, prefix, ids in seen if kind == "evaluate" and prefix == "eval"]
    assert len(per_epoch) == EPOCHS
    assert all(ids == dev for ids in per_epoch)
    reported_dev = [ids for kind, prefix, ids in seen if prefix == "dev"]
    assert reported_dev == [dev]


def test_baseline_and_final_evaluation_saw_exactly_val(recorded_run):
    _, _, seen, expected = recorded_run
    val = list(expected["val"]["image_id"])
    predicted = {prefix: ids for kind, prefix, ids in seen if kind == "predict"}
    assert predicted == {"zero_shot": val, "eval": val}


def test_report_and_saved_adapter_are_the_selected_epochs(recorded_run):
    out, results, _, _ = recorded_run
    state = json.loads((out / "trainer_state.json").read_text())
    dev_accuracies = [e["eval_accuracy"] for e in state["log_history"] if "eval_accuracy" in e]
    assert len(dev_accuracies) == EPOCHS and results["dev_accuracy"] == pytest.approx(max(dev_accuracies))
    assert (out / "adapter_model.safetensors").is_file()
    report = json.loads((out / "classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(results["eval_accuracy"])
