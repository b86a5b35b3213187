"""The control set through main(): scored with the base model, the adapter and each WiSE-FT alpha, in its own label
space; alpha 0 and the adapter switched off are the base model bit for bit; the adapter (text tower included) moves
it; the numbers on the card, in all_results.json and in the trade-off plot are control.json's."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

import train_clip_lora
from clip_lora import artifacts, control
from clip_lora.stats import mcnemar
from clip_lora.testing_utils import make_control_folder
from testing_utils import smoke_argv, user_error

# "tench" is also a task class: a separate label space, so the clash is fine (and tested below).
CONTROL = ["apple", "banana", "tench", "cherry"]
RUN = ("--num_train_epochs", "2", "--wise_alphas", "0,1")


def _run(argv, tmp, name):
    captured = {}
    real = control.run

    def recording_run(trainer, *args, **kwargs):
        result = real(trainer, *args, **kwargs)
        captured.update(trainer.last_control_outputs)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp / f"hf-{name}")
        patch.setattr(control, "run", recording_run)
        results = train_clip_lora.main(argv)
    return results, captured


@pytest.fixture(scope="module")
def runs(tiny_model_dir, image_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("control")
    folder = make_control_folder(tmp / "control", CONTROL, per_class=6)
    trained = _run(
        smoke_argv(tiny_model_dir, image_root, tmp / "run", *RUN, "--control_eval_dir", str(folder)),
        tmp,
        "run",
    )
    base = _run(
        smoke_argv(
            tiny_model_dir, image_root, tmp / "base", "--do_train", "false", "--control_eval_dir", str(folder)
        ),
        tmp,
        "base",
    )
    return tmp / "run", trained, base


def test_alpha_zero_and_adapter_off_equal_the_base_model_bit_for_bit(runs):
    _, (_, outputs), (_, base_outputs) = runs
    base = base_outputs["zero_shot"].predictions  # a run with no adapter at all
    assert np.array_equal(outputs["zero_shot"].predictions, base)  # the adapter switched off
    assert np.array_equal(outputs["alpha_0"].predictions, base)  # the adapter scaled by 0
    assert np.array_equal(outputs["alpha_1"].predictions, outputs["fine_tuned"].predictions)


def test_the_adapter_on_the_text_tower_moves_the_control_set(runs):
    out, (results, outputs), _ = runs
    weights = load_file(str(out / artifacts.ADAPTER_WEIGHTS))
    text_b = [w for k, w in weights.items() if "text_model" in k and "lora_B" in k]
    assert text_b and any(w.abs().sum() > 0 for w in text_b)  # the adapter did change the text tower
    assert not np.array_equal(outputs["fine_tuned"].predictions, outputs["zero_shot"].predictions)
    labels = outputs["zero_shot"].label_ids
    accuracy = [
        float((o.predictions.argmax(1) == labels).mean())
        for o in (outputs["zero_shot"], outputs["fine_tuned"])
    ]
    assert results["control_zero_shot_accuracy"] == accuracy[0]
    assert results["control_eval_accuracy"] == accuracy[1]
    assert accuracy[0] != accuracy[1]  # the control accuracy moved, though none of its classes was trained


def test_a_class_name_shared_with_the_task_is_its_own_label(runs):
    out, _, _ = runs
    record = artifacts.read_json(out / artifacts.CONTROL_JSON)
    assert record["class_names"] == sorted(CONTROL)  # its folders, in sorted order, not the task's classes
    ids, labels, _, names = artifacts.read_prediction_table(out / artifacts.CONTROL_PREDICTIONS)
    assert names == sorted(CONTROL)
    truth = [names.index(i.split("/")[-2]) for i in ids]  # the class folder each image came from
    assert labels.tolist() == truth


def test_card_results_and_paired_test_are_read_from_the_artifacts(runs):
    out, (results, _), _ = runs
    record = artifacts.read_json(out / artifacts.CONTROL_JSON)
    _, labels, before, _ = artifacts.read_prediction_table(out / artifacts.CONTROL_ZERO_SHOT_PREDICTIONS)
    _, labels_after, after, _ = artifacts.read_prediction_table(out / artifacts.CONTROL_PREDICTIONS)
    assert labels.tolist() == labels_after.tolist()
    test = mcnemar(labels, before, after)  # recomputed from the CSVs
    assert {k: record["mcnemar"][k] for k in ("n", "b", "c", "p_value")} == {
        k: test[k] for k in ("n", "b", "c", "p_value")
    }
    saved = artifacts.read_json(out / artifacts.ALL_RESULTS)
    assert saved["control_zero_shot_accuracy"] == record["zero_shot_accuracy"] == test["baseline_accuracy"]
    assert saved["control_eval_accuracy"] == record["eval_accuracy"] == test["model_accuracy"]
    card = (out / artifacts.MODEL_CARD).read_text()
    assert "## Beyond the task" in card
    assert f"| zero-shot (base model) | {record['zero_shot_accuracy']:.4f} |" in card
    assert f"| fine-tuned (adapter) | {record['eval_accuracy']:.4f} |" in card
    assert f"| difference | {record['difference']:+.4f} |" in card
    assert f"fine-tuned {test['b']}, wrong zero-shot and right fine-tuned {test['c']}" in card
    # The trade-off plot: val accuracy (wise_ft.json) against control accuracy (control.json), per alpha.
    wise = artifacts.read_json(out / artifacts.WISE_FT_JSON)["results"]["val"]
    drawn = json.loads(Image.open(out / artifacts.WISE_FT_TRADEOFF_PNG).info["Description"])
    assert drawn == [
        {"alpha": w["alpha"], "val_accuracy": w["accuracy"], "control_accuracy": c["accuracy"]}
        for w, c in zip(wise, record["wise_ft"], strict=True)
    ]
    assert [p["alpha"] for p in drawn] == [0.0, 1.0]
    assert drawn[0]["control_accuracy"] == record["zero_shot_accuracy"]
    assert drawn[1]["control_accuracy"] == record["eval_accuracy"]


def test_a_missing_control_folder_is_one_line_before_anything_runs(
    tiny_model_dir, image_root, tmp_path, capsys
):
    argv = smoke_argv(
        tiny_model_dir, image_root, tmp_path / "out", "--control_eval_dir", str(tmp_path / "nowhere")
    )
    line = user_error(argv, capsys)
    assert "--control_eval_dir" in line and "is not a folder" in line
    assert not (tmp_path / "out" / artifacts.ADAPTER_WEIGHTS).exists()
