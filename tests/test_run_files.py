"""Every JSON file a verb reads from a run or an export goes through clip_lora/run_files.py: a malformed one is one
`error:` line naming the file and the key (predict on an export's class_prompts.json and onnx/classifier.json, the
plots' trainer_state.json and all_results.json, the app's all_results.json, an adapter card's class_names).
compare's own cases are in tests/test_compare_inputs.py.

Run: python -m pytest tests/test_run_files.py -q
"""

from __future__ import annotations

import json
import shutil

import pytest

from clip_lora import app, artifacts, plots
from clip_lora.errors import ModelError, RunError
from clip_lora.model_card import label_info
from clip_lora.testing_utils import make_image_folder
from testing_utils import user_error


@pytest.fixture()
def image(tmp_path):
    make_image_folder(tmp_path / "imgs", ["x"], 1, 1, size=8)
    return next((tmp_path / "imgs").rglob("*.JPEG"))


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {"class_names": "cat,dog", "prompt_templates": ["{}"]},
            "'class_names' is a string, expected a list of",
        ),
        (
            {"class_names": ["cat", 2], "prompt_templates": ["{}"]},
            "'class_names' is a list [...], expected a list",
        ),
        ({"class_names": ["cat", "dog"]}, "has no 'prompt_templates' (expected a list of strings)"),
        (["cat", "dog"], "holds a list [...], expected a JSON object"),
    ],
)
def test_an_exports_class_prompts_are_checked_on_read(
    tiny_model_dir, tmp_path, image, capsys, record, expected
):
    export = shutil.copytree(tiny_model_dir, tmp_path / "export")
    path = export / artifacts.EXPORT_CLASS_PROMPTS
    path.write_text(json.dumps(record))
    line = user_error(["--model_name_or_path", str(export), str(image)], capsys, verb="predict")
    assert line.startswith(f"error: {path}") and expected in line, line
    assert "export the run again (clip-lora export), or pass --labels" in line


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {"class_names": ["a", "b"], "files": {"int8": "m.onnx"}, "input": "x", "output": "y"},
            "no 'files.fp32'",
        ),
        (
            {"class_names": ["a", "b"], "files": [], "input": "x", "output": "y"},
            "'files' is a list [...], expected",
        ),
        ({"class_names": ["a", "b"], "files": {"fp32": "m.onnx"}, "input": "x"}, "has no 'output'"),
    ],
)
def test_an_onnx_exports_classifier_json_is_checked_on_read(tmp_path, image, capsys, record, expected):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    folder = tmp_path / "export" / "onnx"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"")
    (folder / "classifier.json").write_text(json.dumps(record))
    argv = ["--model_name_or_path", str(folder.parent), "--onnx", "fp32", str(image)]
    line = user_error(argv, capsys, verb="predict")
    assert line.startswith(f"error: {folder / 'classifier.json'}") and expected in line, line


def test_the_plots_and_the_app_check_the_run_files_they_read(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / artifacts.ALL_RESULTS).write_text("[0.5]")
    with pytest.raises(RunError, match=r"all_results.json holds a list \[...\], expected a JSON object"):
        app.load_view(run)
    with pytest.raises(RunError, match=r"all_results.json holds a list"):
        plots.save_plots(run)
    (run / artifacts.ALL_RESULTS).write_text(json.dumps({"zero_shot_accuracy": "high"}))
    with pytest.raises(RunError, match=r"'zero_shot_accuracy' is a string, expected a number or null"):
        plots.save_plots(run)
    (run / artifacts.ALL_RESULTS).write_text("{}")
    (run / artifacts.TRAINER_STATE).write_text(json.dumps({"log_history": [{"loss": 1.0}, [2]]}))
    with pytest.raises(
        RunError, match=r"trainer_state.json: 'log_history' is a list \[...\], expected a list of"
    ):
        plots.save_plots(run)
    (run / artifacts.TRAINER_STATE).unlink()
    (run / artifacts.RUN_CONFIG).write_text("")
    with pytest.raises(RunError, match=r"run_config.json is not valid JSON"):
        plots.save_plots(run)


def test_an_adapter_cards_class_names_are_checked_on_read(tmp_path):
    (tmp_path / "README.md").write_text("---\nclass_names: cat\n---\n# an adapter\n")
    with pytest.raises(ModelError, match=r"the model card of .*: 'class_names' is a string, expected a list"):
        label_info(str(tmp_path))
    (tmp_path / "README.md").write_text("---\nclass_names: [cat, dog]\nprompt_templates: [1]\n---\n")
    with pytest.raises(ModelError, match=r"'prompt_templates' is a list \[...\], expected a list of strings"):
        label_info(str(tmp_path))
    (tmp_path / "README.md").write_text("---\nclass_names: [cat, dog]\n---\n")
    assert label_info(str(tmp_path))[0] == ["cat", "dog"]
