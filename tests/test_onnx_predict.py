"""clip-lora predict on an onnx export: the run's predictions reproduced, the same outputs as the torch path, and
neither torch, nor transformers, nor peft imported on the way (checked in a fresh interpreter)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from clip_lora.cli import run as run_verb
from testing_utils import ROOT, user_error

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'clip-lora[onnx]'")


def _run_rows(run):
    with open(run.output_dir / "predictions.csv", newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def _predictions(path, image_root):
    return {
        Path(item["image"]).relative_to(image_root).as_posix(): item["top_k"]
        for item in json.loads(path.read_text())["predictions"]
    }


def test_the_fp32_graph_reproduces_predictions_csv_without_importing_torch(
    trained_run, onnx_export, image_root, tmp_path
):
    out = tmp_path / "preds.csv"
    code = (
        "import sys; from clip_lora.cli import main\n"
        f"rc = main(['predict', '--model_name_or_path', {str(onnx_export)!r}, {str(image_root / 'val')!r},"
        f" '--output', {str(out)!r}, '--top_k', '10'])\n"
        "print(rc, sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "0 []"  # exit status 0, and none of the three imported
    expected = _run_rows(trained_run)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(expected) == 100
    for row in rows:
        want = expected[Path(row["image"]).relative_to(image_root).as_posix()]
        assert row["label_1"] == want["prediction"]
        for r in range(1, 11):  # every probability is the evaluation's
            assert float(row[f"score_{r}"]) == pytest.approx(float(want[row[f"label_{r}"]]), abs=1e-4)


def test_onnx_and_torch_paths_give_the_same_json(onnx_export, image_root, tmp_path):
    outputs = {}
    for choice in ("fp32", "off"):
        outputs[choice] = tmp_path / f"{choice}.json"
        argv = ["--model_name_or_path", str(onnx_export), str(image_root / "val"), "--onnx", choice]
        assert run_verb("predict", [*argv, "--output", str(outputs[choice]), "--top_k", "3"]) == 0
    onnx, torch_ = (_predictions(outputs[c], image_root) for c in ("fp32", "off"))
    assert onnx.keys() == torch_.keys() and len(onnx) == 100
    for image, top in onnx.items():
        assert [e["label"] for e in top] == [e["label"] for e in torch_[image]]
        assert [e["score"] for e in top] == pytest.approx([e["score"] for e in torch_[image]], abs=1e-5)


def test_int8_agrees_with_fp32_as_the_export_check_says(onnx_export, image_root, tmp_path):
    check = json.loads((onnx_export / "onnx" / "export_check.json").read_text())
    tops = {}
    for choice in ("fp32", "int8"):
        out = tmp_path / f"{choice}.json"
        argv = [
            "--model_name_or_path",
            str(onnx_export),
            str(image_root / "val"),
            "--onnx",
            choice,
            "--output",
            str(out),
        ]
        assert run_verb("predict", argv) == 0
        tops[choice] = {image: top[0]["label"] for image, top in _predictions(out, image_root).items()}
    differ = sorted(image for image in tops["fp32"] if tops["fp32"][image] != tops["int8"][image])
    assert differ == sorted(d["image"] for d in check["int8_disagreements"])


def test_the_table_on_the_console(onnx_export, image_root, capsys):
    image = sorted((image_root / "val").rglob("*.JPEG"))[0]
    capsys.readouterr()
    assert run_verb("predict", ["--model_name_or_path", str(onnx_export), str(image), "--top_k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("image") and lines[1].startswith(str(image)) and len(lines) == 2


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--onnx", "fp32", "--labels", "a,b"], "--labels cannot change an onnx graph"),
        (["--onnx", "int8", "--prompt_template", "a {}"], "--prompt_template cannot change"),
        (["--onnx", "fp32", "--device", "cuda"], "runs on the cpu"),
        (["--onnx", "gpu"], "invalid choice"),
        (["--onnx", "fp32", "--no_temperature"], "--no_temperature cannot change an onnx graph"),
    ],
)
def test_what_the_graph_cannot_do_is_one_error_line(onnx_export, image_root, capsys, extra, words):
    argv = ["--model_name_or_path", str(onnx_export), str(image_root / "val"), *extra]
    assert words in user_error(argv, capsys, verb="predict")


def test_asking_for_onnx_without_a_graph_is_one_error_line(trained_run, tiny_model_dir, image_root, capsys):
    for model in (
        ["--model_name_or_path", str(tiny_model_dir)],
        ["--adapter_name_or_path", str(trained_run.output_dir)],
    ):
        line = user_error([*model, str(image_root / "val"), "--onnx", "int8"], capsys, verb="predict")
        assert "needs --model_name_or_path EXPORT_DIR holding onnx/model.onnx" in line


def test_no_temperature_on_an_export_scores_with_the_torch_model(onnx_export):
    """The graph has the run's temperature built in: asking for plain softmax by default leaves it for the merged
    torch model, which can (and nothing else asks for torch)."""
    from clip_lora.onnx_flags import uses_onnx
    from clip_lora.verb_args import predict_args

    argv = ["--model_name_or_path", str(onnx_export), str(onnx_export)]
    assert uses_onnx(predict_args(argv))
    assert not uses_onnx(predict_args([*argv, "--no_temperature"]))
