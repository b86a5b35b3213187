"""WiSE-FT and prompt ensembles through train_clip_lora.main: alpha 0 is zero-shot, alpha 1 the fine-tuned adapter.

Both runs use --preprocessing cached (uint8 pixels the collator normalises), so the single-template report is also
checked on that path; the shifted set is read on the fly.
"""

from __future__ import annotations

import json

import datasets
import pytest

import train_clip_lora
from clip_lora.artifacts import read_predictions
from testing_utils import smoke_argv

TEMPLATES = "a photo of a {}.\na blurry photo of the {}.\nart of the {}.\n"


@pytest.fixture(scope="module")
def pixel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the pixel cache goes to a temporary folder, not ~/.cache
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-datasets"))
        yield


@pytest.fixture(scope="module")
def wise_run(pixel_cache, tiny_model_dir, image_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("wise")
    templates = out.parent / "wise-templates.txt"
    templates.write_text(TEMPLATES)
    results = train_clip_lora.main(
        smoke_argv(
            tiny_model_dir,
            image_root,
            out,
            "--num_train_epochs",
            "2",
            "--max_train_samples",
            "48",
            "--prompt_templates",
            str(templates),
            "--preprocessing",
            "cached",
            "--wise_alphas",
            "0,0.5,1",
            "--robustness_eval_dir",
            str(image_root / "val"),
        )
    )
    return out, results


def test_alpha_0_is_zero_shot_and_alpha_1_is_the_fine_tuned_model(wise_run):
    out, results = wise_run
    assert (out / "wise_ft" / "val_alpha_0.csv").read_bytes() == (
        out / "zero_shot_predictions.csv"
    ).read_bytes()
    assert (out / "wise_ft" / "val_alpha_1.csv").read_bytes() == (out / "predictions.csv").read_bytes()
    assert (
        results["eval_accuracy"] > results["zero_shot_accuracy"]
    )  # so the two equalities are not the same claim
    _, zero_preds, _ = read_predictions(out / "zero_shot_predictions.csv")
    _, tuned_preds, _ = read_predictions(out / "predictions.csv")
    assert (zero_preds != tuned_preds).any()


def test_wise_ft_json_and_plot(wise_run):
    out, results = wise_run
    summary = json.loads((out / "wise_ft.json").read_text())
    assert summary["alphas"] == [0.0, 0.5, 1.0]
    assert summary["num_images"] == {"val": 100, "robustness": 100}
    val = {e["alpha"]: e["accuracy"] for e in summary["results"]["val"]}
    assert val[0.0] == pytest.approx(results["zero_shot_accuracy"]) and val[1.0] == pytest.approx(
        results["eval_accuracy"]
    )
    # The 'shifted' set is val again here (read on the fly, val from the uint8 cache: pixels equal within 1/255).
    shifted = {e["alpha"]: e["accuracy"] for e in summary["results"]["robustness"]}
    assert shifted == pytest.approx(val, abs=0.02)
    assert (out / "wise_ft.png").stat().st_size > 1000


def test_ensemble_run_reports_single_template_zero_shot(wise_run, tiny_model_dir, image_root, tmp_path):
    out, results = wise_run
    assert results["num_prompt_templates"] == 3
    single = train_clip_lora.main(
        smoke_argv(tiny_model_dir, image_root, tmp_path, "--do_train", "false", "--preprocessing", "cached")
    )
    assert single["num_prompt_templates"] == 1 and "zero_shot_single_accuracy" not in single
    assert results["zero_shot_single_accuracy"] == pytest.approx(single["zero_shot_accuracy"])
    assert results["zero_shot_single_loss"] == pytest.approx(single["zero_shot_loss"], rel=1e-5)
    assert results["zero_shot_loss"] != pytest.approx(
        single["zero_shot_loss"], rel=1e-5
    )  # the ensemble is used
