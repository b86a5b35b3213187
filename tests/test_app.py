"""clip-lora app's data (no browser, no gradio needed): the top-5 beside zero-shot, the changed images, the image
files behind the run's ids, and the one-line errors (gradio missing, a source that is neither a folder nor an id)."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import shutil
import socket

import pytest
from PIL import Image

from clip_lora import app, app_run, changes
from clip_lora.cli import run as run_verb
from clip_lora.errors import ModelError
from testing_utils import clip_lora_imports, import_circles


def _csv_rows(path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def _top5(row: dict) -> list[tuple[str, float]]:
    probabilities = {name: float(value) for name, value in list(row.items())[3:]}
    return sorted(probabilities.items(), key=lambda item: -item[1])[:5]


def _one_error_line(capsys, argv) -> str:
    capsys.readouterr()
    assert run_verb("app", argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_changed_images_are_the_rows_whose_correctness_differs(trained_run):
    out = trained_run.output_dir
    zero_shot, fine_tuned = _csv_rows(out / "zero_shot_predictions.csv"), _csv_rows(out / "predictions.csv")
    expected_fixed = {
        image
        for image, row in fine_tuned.items()
        if row["prediction"] == row["label"] and zero_shot[image]["prediction"] != row["label"]
    }
    expected_broken = {
        image
        for image, row in fine_tuned.items()
        if row["prediction"] != row["label"] and zero_shot[image]["prediction"] == row["label"]
    }
    assert expected_fixed, "the smoke run should fix at least one image"
    view = app_run.load_view(out)
    assert {c.image for c in view.fixed} == expected_fixed
    assert {c.image for c in view.broken} == expected_broken
    for changed in view.fixed + view.broken:  # the probabilities shown are the CSVs' own
        for prediction, probabilities, rows in (
            (changed.zero_shot, changed.zero_shot_probs, zero_shot),
            (changed.fine_tuned, changed.fine_tuned_probs, fine_tuned),
        ):
            row = rows[changed.image]
            assert prediction == row["prediction"]
            assert probabilities[row["label"]] == float(row[row["label"]])
        assert changed.path is not None  # the thumbnail's file is found from run_config


def test_top5_beside_zero_shot_equals_the_runs_two_csvs(trained_run, image_root):
    out = trained_run.output_dir
    image_id = next(iter(_csv_rows(out / "predictions.csv")))
    classifier = app_run.Classifier(app.adapter_path(out, {}), "cpu")
    with Image.open(image_root / image_id) as image:
        fine_tuned, zero_shot = classifier.top_k(image, 5)
    for got, csv_name in ((fine_tuned, "predictions.csv"), (zero_shot, "zero_shot_predictions.csv")):
        expected = _top5(_csv_rows(out / csv_name)[image_id])
        assert [name for name, _ in got] == [name for name, _ in expected]
        assert [p for _, p in got] == pytest.approx([p for _, p in expected], abs=1e-4)


def test_a_relative_data_dir_is_found_from_the_folders_above_the_run(trained_run, image_root, tmp_path):
    """The demo records data_dir relative to the folder it ran in; the page finds it from anywhere."""
    project = tmp_path / "project"
    shutil.copytree(image_root, project / "assets" / "imagenette")
    run_dir = project / "runs" / "demo"
    run_dir.mkdir(parents=True)
    image_id = next(iter(_csv_rows(trained_run.output_dir / "predictions.csv")))
    config = {"dataset_name": "imagenette", "data_dir": "assets/imagenette"}
    assert changes.image_root(run_dir, config, image_id) == project / "assets" / "imagenette"
    assert changes.image_root(run_dir, {"data_dir": "elsewhere"}, image_id) is None
    (run_dir / "run_config.json").write_text(json.dumps({"data_dir": "elsewhere"}))
    assert changes.image_root(run_dir, {}, image_id, data_dir=str(image_root)) == image_root


def test_a_taken_port_is_one_error_line_before_the_model_loads(trained_run, monkeypatch, capsys):
    monkeypatch.setattr(app, "Classifier", lambda *args: pytest.fail("the model was loaded first"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(capsys, [str(trained_run.output_dir), "--port", str(port)])
    assert line.startswith(f"error: cannot serve on 127.0.0.1:{port}") and "another --port" in line


def test_without_gradio_the_verb_names_the_extra_to_install(trained_run, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real_find_spec(name, *a)
    )
    line = _one_error_line(capsys, [str(trained_run.output_dir)])
    assert line.startswith("error: ") and "pip install clip-lora[app]" in line


def test_a_source_that_is_neither_a_run_nor_a_hub_id_is_one_error_line(tmp_path, capsys):
    line = _one_error_line(capsys, [str(tmp_path / "no-such-run")])
    assert line == (
        f"error: clip-lora app {tmp_path / 'no-such-run'}: no such run folder; the nearest existing folder is "
        f"{tmp_path}; check the path."
    )
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert "has no adapter" in _one_error_line(capsys, [str(empty)])


def test_an_uncached_hub_id_offline_is_one_error_and_an_eval_only_run_uses_its_adapter(tmp_path):
    with pytest.raises(ModelError, match="cannot get tester/not-cached from the Hub"):
        app.resolve_run("tester/not-cached")  # HF_HUB_OFFLINE=1 (conftest): the cache only
    eval_only = tmp_path / "eval-only"
    eval_only.mkdir()
    assert app.adapter_path(eval_only, {"adapter_name_or_path": "runs/demo"}) == "runs/demo"


def test_data_dir_finds_the_changed_images_of_a_run_without_run_config(trained_run, image_root, tmp_path):
    """`clip-lora app RUN --data_dir DIR`: a pushed repo's CSVs carry no run_config.json, the images are elsewhere."""
    for name in ("predictions.csv", "zero_shot_predictions.csv"):
        shutil.copy(trained_run.output_dir / name, tmp_path / name)
    assert all(c.path is None for c in changes.changed_images(tmp_path))
    view = app_run.load_view(tmp_path, data_dir=str(image_root))
    found = view.fixed + view.broken
    assert found and all(c.path == image_root / c.image for c in found)
    assert view.image_files == [c.path for c in found]


def test_the_app_modules_import_one_way():
    """app (the verb) -> app_page (gradio) -> app_run (the data): the page never imports the verb back."""
    graph = clip_lora_imports()
    assert (
        "clip_lora.app_page" in graph["clip_lora.app"] and "clip_lora.app_run" in graph["clip_lora.app_page"]
    )
    circles = [circle for circle in import_circles(graph) if circle & {"clip_lora.app", "clip_lora.app_page"}]
    assert not circles, circles


def test_captions_are_three_whole_lines_and_class_names_are_escaped_in_the_page(trained_run):
    changed = next(c for c in changes.changed_images(trained_run.output_dir) if c.fixed)
    assert changed.caption_lines() == (
        f"true: {changed.true}",
        f"zero-shot: {changed.zero_shot} ({changed.zero_shot_probs[changed.zero_shot]:.2f})",
        f"fine-tuned: {changed.fine_tuned} ({changed.fine_tuned_probs[changed.fine_tuned]:.2f})",
    )
    pytest.importorskip(
        "gradio", reason="the page itself needs the app extra (make test-browser installs it)"
    )
    from clip_lora import app_page

    tricky = dataclasses.replace(
        changed,
        true="<b>tench</b>",
        zero_shot_probs={**changed.zero_shot_probs, "<b>tench</b>": 0.5},
        fine_tuned_probs={**changed.fine_tuned_probs, "<b>tench</b>": 0.5},
    )
    grid = app_page.changed_grid_html([tricky])
    assert "<b>tench</b>" not in grid and "true: &lt;b&gt;tench&lt;/b&gt;<br>zero-shot: " in grid
    assert grid.count("<figcaption") == 1 and 'src="data:image/jpeg;base64,' in grid
