"""clip-lora export --onnx: one graph, pixels -> probabilities, equal to the merged torch model, checked by itself,
with the fitted temperature applied, and a README whose python block runs with onnxruntime, numpy and Pillow."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from clip_lora import artifacts, onnx_check
from clip_lora.cli import run as run_verb
from clip_lora.export import text_class_embeddings
from clip_lora.loss import capped_logit_scale, class_logits
from testing_utils import user_error

ort = pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed: pip install 'clip-lora[onnx]'"
)


def _val_rows(run):
    with open(run.output_dir / artifacts.PREDICTIONS, newline="") as f:
        return list(csv.DictReader(f))


def _onnx(path, pixels):
    return ort.InferenceSession(str(path)).run(None, {"pixel_values": pixels})[0]


@pytest.fixture(scope="module")
def val_pixels(trained_run, onnx_export, image_root):
    """The demo val set (100 images) through the export's own CLIPImageProcessor (the torch side's pixels)."""
    processor = CLIPProcessor.from_pretrained(onnx_export)
    images = [Image.open(image_root / row["image"]).convert("RGB") for row in _val_rows(trained_run)]
    return processor.image_processor(images=images, return_tensors="np")["pixel_values"].astype(np.float32)


def test_fp32_graph_equals_the_merged_torch_model_on_the_demo_val_set(trained_run, onnx_export, val_pixels):
    files = {p.relative_to(onnx_export).as_posix() for p in onnx_export.rglob("*")}
    assert {
        "onnx/model.onnx",
        "onnx/model_quantized.onnx",
        "onnx/classifier.json",
        "onnx/export_check.json",
    } <= files
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "class_prompts.json",
        "README.md",
    } <= files
    merged = CLIPModel.from_pretrained(onnx_export).eval()  # the torch reference, computed independently here
    info = json.loads((onnx_export / "onnx" / "classifier.json").read_text())
    tokenizer = CLIPProcessor.from_pretrained(onnx_export).tokenizer
    with torch.no_grad():
        classes = text_class_embeddings(merged, tokenizer, info["class_names"], info["prompt_templates"])
        image = merged.get_image_features(pixel_values=torch.from_numpy(val_pixels)).pooler_output
        expected = class_logits(image, classes, capped_logit_scale(merged)).softmax(dim=-1).numpy()
    got = _onnx(onnx_export / "onnx" / "model.onnx", val_pixels)
    assert got.shape == (100, 10) and info["temperature"] == 1.0
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    rows = _val_rows(trained_run)  # and the run's own predictions.csv, top-1 on every image
    assert [info["class_names"][i] for i in got.argmax(axis=1)] == [row["prediction"] for row in rows]
    assert _onnx(onnx_export / "onnx" / "model.onnx", val_pixels[:1]).shape == (1, 10)  # dynamic batch


def test_export_check_reports_what_the_graphs_do(trained_run, onnx_export, val_pixels):
    check = json.loads((onnx_export / "onnx" / "export_check.json").read_text())
    assert check["num_images"] == 100 and "val images" in check["images"]
    assert check["fp32_vs_torch_max_abs_diff"] <= 1e-5
    assert check["fp32_top1_vs_predictions_csv"] == 1.0
    # Recomputed here: int8 vs fp32 top-1 on the same images, and the disagreeing ones named.
    names = json.loads((onnx_export / "onnx" / "classifier.json").read_text())["class_names"]
    fp32 = _onnx(onnx_export / "onnx" / "model.onnx", val_pixels).argmax(axis=1)
    int8 = _onnx(onnx_export / "onnx" / "model_quantized.onnx", val_pixels).argmax(axis=1)
    rows = _val_rows(trained_run)
    differ = [
        {"image": r["image"], "fp32": names[a], "int8": names[b]}
        for r, a, b in zip(rows, fp32, int8, strict=True)
        if a != b
    ]
    assert check["int8_disagreements"] == differ
    assert check["int8_vs_fp32_top1_agreement"] == pytest.approx(1 - len(differ) / 100)
    card = (onnx_export / "README.md").read_text()
    assert f"{check['int8_vs_fp32_top1_agreement']:.1%}" in card and "export_check.json" in card


def test_the_readme_snippet_runs_with_onnxruntime_numpy_and_pillow_alone(
    trained_run, onnx_export, image_root
):
    card = (onnx_export / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    row = _val_rows(trained_run)[0]
    work = onnx_export.parent / "snippet"
    shutil.copytree(onnx_export, work)
    shutil.copy(image_root / row["image"], work / "cat.jpg")
    guard = "\nimport sys; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n"
    done = subprocess.run(
        [sys.executable, "-c", snippet + guard], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    answer, modules = done.stdout.splitlines()
    label, probability = answer.rsplit(" ", 1)
    assert modules == "[]"
    # The int8 graph on CLIPImageProcessor's pixels (the snippet's preprocessing is the processor's, by hand).
    pixels = CLIPProcessor.from_pretrained(onnx_export).image_processor(
        images=[Image.open(work / "cat.jpg").convert("RGB")], return_tensors="np"
    )["pixel_values"]
    expected = _onnx(onnx_export / "onnx" / "model_quantized.onnx", pixels.astype(np.float32))[0]
    names = json.loads((onnx_export / "onnx" / "classifier.json").read_text())["class_names"]
    assert label == names[expected.argmax()] and float(probability) == pytest.approx(expected.max(), abs=1e-4)


@pytest.fixture(scope="module")
def tempered_export(trained_run, tmp_path_factory):
    """The same run with a hand-made temperature.json (issue #26's file), exported with an int8 bar it fails."""
    tmp = tmp_path_factory.mktemp("tempered")
    adapter = tmp / "run"
    shutil.copytree(trained_run.output_dir, adapter)
    (adapter / "temperature.json").write_text(json.dumps({"temperature": 2.5, "fitted_on": "hand-made"}))
    out = tmp / "exported"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx_check, "INT8_WARN_SHARE", -1.0)  # any share is "too many": the warning path
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = run_verb(
                "export", ["--adapter_name_or_path", str(adapter), "--output_dir", str(out), "--onnx"]
            )
    assert code == 0
    return out, err.getvalue()


def test_a_fitted_temperature_divides_the_logits_in_the_graph(onnx_export, tempered_export, val_pixels):
    out, _ = tempered_export
    plain = _onnx(onnx_export / "onnx" / "model.onnx", val_pixels)
    tempered = _onnx(out / "onnx" / "model.onnx", val_pixels)
    logits = np.log(plain.astype(np.float64)) / 2.5  # softmax(L / T) = softmax(log softmax(L) / T)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(tempered, expected / expected.sum(axis=1, keepdims=True), atol=1e-5, rtol=0)
    assert np.abs(tempered - plain).max() > 1e-2  # the temperature changed something
    assert json.loads((out / "onnx" / "classifier.json").read_text())["temperature"] == 2.5
    assert "temperature 2.5" in (out / "README.md").read_text()


def test_an_int8_graph_over_the_bar_is_written_with_a_warning_naming_the_share(tempered_export):
    out, stderr = tempered_export
    check = json.loads((out / "onnx" / "export_check.json").read_text())
    share = 1 - check["int8_vs_fp32_top1_agreement"]
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: int8 top-1 differs")]
    assert len(warnings) == 1 and f"{share:.1%} of 100 images" in warnings[0]
    assert (out / "onnx" / "model_quantized.onnx").is_file()


@pytest.mark.parametrize("content", ['{"temperature": -1}', '{"temperature": "hot"}', '{"T": 2}', "not json"])
def test_a_broken_temperature_file_is_one_error_line(trained_run, tmp_path, capsys, content):
    adapter = tmp_path / "run"
    shutil.copytree(trained_run.output_dir, adapter)
    (adapter / "temperature.json").write_text(content)
    argv = ["--adapter_name_or_path", str(adapter), "--output_dir", str(tmp_path / "out"), "--onnx"]
    line = user_error(argv, capsys, verb="export")
    assert "temperature" in line and ("refit" in line or "delete" in line)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spelling", [["--onnx"], ["--format", "onnx"]])
def test_without_the_onnx_extra_export_says_what_to_install(
    trained_run, tmp_path, capsys, monkeypatch, spelling
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    argv = [
        "--adapter_name_or_path",
        str(trained_run.output_dir),
        "--output_dir",
        str(tmp_path / "out"),
        *spelling,
    ]
    line = user_error(argv, capsys, verb="export")
    assert "pip install 'clip-lora[onnx]'" in line and "onnxruntime" in line


def test_format_onnx_is_the_onnx_flag_and_format_merged_is_without_it(trained_run, tmp_path, capsys):
    from clip_lora.verb_args import export_args

    base = ["--adapter_name_or_path", str(trained_run.output_dir), "--output_dir", str(tmp_path / "out")]
    assert export_args([*base, "--format", "onnx"]).onnx is True
    assert export_args([*base, "--format", "merged"]).onnx is False and export_args(base).onnx is False
    line = user_error([*base, "--format", "merged", "--onnx"], capsys, verb="export")
    assert line == "error: --format merged and --onnx disagree; pass one of them (--format onnx = --onnx)."
    assert "invalid choice: 'tflite'" in user_error([*base, "--format", "tflite"], capsys, verb="export")
