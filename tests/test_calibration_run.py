"""Calibration through main(): T fitted on dev only (a run whose val images differ fits the same T), the stored
numbers equal what the run's other artifacts say, the card shows them, and predict / export apply T."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import train_clip_lora
from clip_lora import artifacts, calibration
from clip_lora.app_run import Classifier
from clip_lora.export import export_merged
from clip_lora.predict import load_classifier, predict_images, stored_temperature
from testing_utils import smoke_argv

# 2 epochs on 30% dev: the tiny model still errs on dev, so its NLL has a minimum inside the bounds (a dev split it
# gets all right keeps T = 1, tested in test_calibration.py).
RUN = ("--num_train_epochs", "2", "--dev_split_ratio", "0.3")


def _perturbed_val(image_root, root):
    """The same train images; val with every other image dropped and the rest colour-inverted."""
    shutil.copytree(image_root / "train", root / "train")
    for i, path in enumerate(sorted((image_root / "val").rglob("*.JPEG"))):
        if i % 2:
            continue
        target = root / "val" / path.relative_to(image_root / "val")
        target.parent.mkdir(parents=True, exist_ok=True)
        ImageOps.invert(Image.open(path).convert("RGB")).save(target, quality=95)
    return root


@pytest.fixture(scope="module")
def runs(tiny_model_dir, image_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibration")
    seen = []
    fit = calibration.fit_temperature

    def recording_fit(logits, labels, *args, **kwargs):
        seen.append(np.asarray(labels).copy())
        return fit(logits, labels, *args, **kwargs)

    outs = []
    for name, data in (("run", image_root), ("other_val", _perturbed_val(image_root, tmp / "data"))):
        out = tmp / name
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp / f"hf-{name}")
            patch.setattr(calibration, "fit_temperature", recording_fit)
            train_clip_lora.main(smoke_argv(tiny_model_dir, data, out, *RUN))
        outs.append(out)
    return outs, seen


def test_temperature_is_fitted_on_dev_only(runs):
    (out, other), seen = runs
    fits = [artifacts.read_json(d / artifacts.TEMPERATURE) for d in (out, other)]
    assert fits[0]["fitted"] and fits[0]["fitted_on"] == "dev"
    assert fits[0]["temperature"] != 1.0
    # Val differs (half the images, colours inverted), so the val calibration differs; T does not move at all.
    vals = [artifacts.read_json(d / artifacts.CALIBRATION) for d in (out, other)]
    assert vals[0]["images"] == 2 * vals[1]["images"]
    assert vals[0]["models"]["fine_tuned"]["ece"] != vals[1]["models"]["fine_tuned"]["ece"]
    assert fits[0] == fits[1]
    # One fit per run, on exactly the dev images (their count is the dev evaluation's).
    results = artifacts.read_json(out / artifacts.ALL_RESULTS)
    assert [len(labels) for labels in seen] == [fits[0]["dev_images"]] * 2
    # The dev NLL before scaling is the trainer's dev loss (its float64 cross-entropy of the same logits).
    assert fits[0]["dev_nll_before"] == pytest.approx(results["dev_loss"], rel=1e-9)
    assert fits[0]["dev_nll_after"] < fits[0]["dev_nll_before"]


def _csv_probs(path):
    """(labels, probabilities) from a predictions CSV (probabilities rounded to 6 decimals)."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    names = header[3:]
    rows = [line.split(",") for line in lines[1:]]
    labels = np.array([names.index(r[1]) for r in rows])
    return labels, np.array([[float(x) for x in r[3:]] for r in rows])


def test_val_calibration_matches_the_predictions_files(runs):
    (out, _), _ = runs
    record = artifacts.read_json(out / artifacts.CALIBRATION)
    t = record["temperature"]
    for name, csv_name, power in (
        ("zero_shot", artifacts.ZERO_SHOT_PREDICTIONS, 1.0),
        ("fine_tuned", artifacts.PREDICTIONS, 1.0),
        ("fine_tuned_temperature", artifacts.PREDICTIONS, 1 / t),  # softmax(z / T) = p**(1/T), renormalised
    ):
        labels, probs = _csv_probs(out / csv_name)
        probs = probs**power / (probs**power).sum(axis=1, keepdims=True)
        m = record["models"][name]
        assert m["ece"] == pytest.approx(calibration.ece(probs, labels), abs=1e-4), name
        assert m["brier"] == pytest.approx(calibration.brier(probs, labels), abs=1e-4), name
        assert m["accuracy"] == pytest.approx(float((probs.argmax(axis=1) == labels).mean())), name
    # T changes the probabilities, never the top-1: same accuracy with and without it.
    assert (
        record["models"]["fine_tuned_temperature"]["accuracy"] == record["models"]["fine_tuned"]["accuracy"]
    )
    results = artifacts.read_json(out / artifacts.ALL_RESULTS)
    assert results["eval_ece"] == record["models"]["fine_tuned"]["ece"]
    assert results["eval_temperature_ece"] == record["models"]["fine_tuned_temperature"]["ece"]
    assert results["zero_shot_nll"] == record["models"]["zero_shot"]["nll"]
    assert results["temperature"] == t


def test_card_and_plot_show_the_artifacts_numbers(runs):
    (out, _), _ = runs
    card = (out / artifacts.MODEL_CARD).read_text()
    record = artifacts.read_json(out / artifacts.CALIBRATION)
    fit = artifacts.read_json(out / artifacts.TEMPERATURE)
    assert "## Calibration (val)" in card and "15 equal-width bins" in card
    m = record["models"]
    assert f"| zero-shot (base model) | {m['zero_shot']['ece']:.4f} | {m['zero_shot']['nll']:.4f} |" in card
    assert f"| fine-tuned, as trained (T = 1) | {m['fine_tuned']['ece']:.4f} |" in card
    scaled = f"| fine-tuned, temperature-scaled (T = {fit['temperature']:.4f}) | {m['fine_tuned_temperature']['ece']:.4f} |"
    assert scaled in card
    assert f"T = {fit['temperature']:.4f}, fitted on the {fit['dev_images']} dev images only" in card
    # The card's snippet applies the same T as `clip-lora predict`.
    assert f"logits = logits / {fit['temperature']!r}" in card
    described = json.loads(Image.open(out / artifacts.RELIABILITY).info["Description"])
    assert described == record


def test_predict_and_export_apply_the_stored_temperature(runs, tmp_path, capsys):
    (out, _), _ = runs
    t = artifacts.read_json(out / artifacts.TEMPERATURE)["temperature"]
    assert stored_temperature(str(out), None) == t
    assert stored_temperature(str(out), None, off=True) == 1.0  # --no_temperature
    model, processor, names, templates = load_classifier(None, str(out), None, None, "cpu")
    images = [Image.open(p).convert("RGB") for p in sorted((out.parent / "data" / "val").rglob("*.JPEG"))[:8]]
    plain = predict_images(model, processor, names, templates, images)
    scaled = predict_images(model, processor, names, templates, images, temperature=t)
    assert torch.equal(plain.argmax(dim=1), scaled.argmax(dim=1))  # argmax is invariant under logits / T
    expected = (plain.double().log() / t).softmax(dim=1)
    assert torch.allclose(scaled.double(), expected, atol=1e-5)
    # The app's fine-tuned probabilities carry T too (its zero-shot column is the base model's, T = 1).
    app = Classifier(str(out))
    assert app.temperature == t
    fine_tuned, _ = app.top_k(images[0], k=len(names))
    assert dict(fine_tuned) == pytest.approx(dict(zip(names, scaled[0].tolist(), strict=True)), abs=1e-5)
    exported = export_merged(str(out), tmp_path / "merged")
    assert (exported / artifacts.TEMPERATURE).read_bytes() == (out / artifacts.TEMPERATURE).read_bytes()
    assert stored_temperature(None, str(exported)) == t
