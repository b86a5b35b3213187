"""clip-lora-predict: the trained adapter on files and folders, unreadable files skipped, zero-shot --labels, formats."""

from __future__ import annotations

import configparser
import csv
import importlib
import json
from pathlib import Path

import pytest
from PIL import Image

from clip_lora.cli import run as run_verb
from testing_utils import ROOT

IMAGENETTE_NAMES = (
    "tench,English springer,cassette player,chain saw,church,French horn,garbage truck,gas pump,"
    "golf ball,parachute"
)


def _csv_rows(path):
    with open(path, newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def _check_against_run(output_json, run_csv, image_root):
    expected = _csv_rows(run_csv)
    got = json.loads(output_json.read_text())["predictions"]
    assert len(got) == len(expected) == 100
    for item in got:
        row = expected[Path(item["image"]).relative_to(image_root).as_posix()]
        top = item["top_k"][0]
        assert top["label"] == row["prediction"]
        for entry in item["top_k"]:  # every reported probability is the evaluation's
            assert entry["score"] == pytest.approx(float(row[entry["label"]]), abs=1e-4)


def test_adapter_on_a_folder_reproduces_the_runs_val_predictions(trained_run, image_root, tmp_path):
    out = tmp_path / "preds.json"
    argv = [
        "--adapter_name_or_path",
        str(trained_run.output_dir),
        str(image_root / "val"),
        "--output",
        str(out),
    ]
    assert (
        run_verb("predict", argv) == 0
    )  # class names and prompts come from the model card, the base from adapter_config
    _check_against_run(out, trained_run.output_dir / "predictions.csv", image_root)


def test_zero_shot_with_labels_reproduces_the_zero_shot_baseline(
    trained_run, tiny_model_dir, image_root, tmp_path
):
    out = tmp_path / "zs.json"
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--labels",
        IMAGENETTE_NAMES,
        str(image_root / "val"),
        "--output",
        str(out),
        "--top_k",
        "3",
    ]
    assert run_verb("predict", argv) == 0
    _check_against_run(out, trained_run.output_dir / "zero_shot_predictions.csv", image_root)
    assert all(len(item["top_k"]) == 3 for item in json.loads(out.read_text())["predictions"])


@pytest.fixture
def mixed_folder(image_root, tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    for i, path in enumerate(sorted((image_root / "val").rglob("*.JPEG"))[:2]):
        Image.open(path).save(folder / "sub" / f"ok{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored: not an image file name")
    return folder


def test_unreadable_file_is_reported_and_skipped_csv(trained_run, mixed_folder, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    argv = [
        "--adapter_name_or_path",
        str(trained_run.output_dir),
        str(mixed_folder),
        "--output",
        str(out),
        "--top_k",
        "2",
    ]
    assert run_verb("predict", argv) == 0
    err = capsys.readouterr().err
    assert f"skipped {mixed_folder / 'broken.jpg'}" in err and "notes.txt" not in err
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", "label_1", "score_1", "label_2", "score_2"]
    assert [r[0] for r in rows[1:]] == [
        str(mixed_folder / "sub" / "ok0.png"),
        str(mixed_folder / "sub" / "ok1.png"),
    ]
    assert all(1.0 >= float(r[2]) >= float(r[4]) >= 0.0 for r in rows[1:])


def test_table_and_json_skipped_list(trained_run, mixed_folder, tmp_path, capsys):
    image = mixed_folder / "sub" / "ok0.png"
    assert (
        run_verb(
            "predict", ["--adapter_name_or_path", str(trained_run.output_dir), str(image), "--top_k", "1"]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("image") and lines[1].startswith(str(image)) and len(lines) == 2
    out = tmp_path / "p.json"
    argv = ["--adapter_name_or_path", str(trained_run.output_dir), str(mixed_folder), "--output", str(out)]
    assert run_verb("predict", argv) == 0
    data = json.loads(out.read_text())
    assert [s["image"] for s in data["skipped"]] == [str(mixed_folder / "broken.jpg")]
    assert len(data["predictions"]) == 2 and len(data["predictions"][0]["top_k"]) == 5


def test_labels_replace_the_class_names(tiny_model_dir, mixed_folder, capsys):
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--labels",
        "red, green,blue",
        str(mixed_folder / "sub"),
    ]
    assert run_verb("predict", argv) == 0
    body = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(body) == 2
    for line in body:
        labels = line.split()[1::2]
        assert sorted(labels) == ["blue", "green", "red"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "--labels"),
        (["--labels", "a,b", "--output", "x.txt"], ".csv or .json"),
        (["--labels", "a,b"], None),
    ],
)
def test_user_errors_exit_2_with_one_line(extra, message, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"\x00" * 10)  # the only file is unreadable
    argv = ["--model_name_or_path", str(tiny_model_dir), str(tmp_path / "bad.jpg"), *extra]
    assert run_verb("predict", argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and (message or "no readable images") in err


def test_console_scripts_are_declared_and_resolve():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = dict(
        line.split(" = ") for line in config["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    assert set(scripts) >= {
        "clip-lora",
        "clip-lora-train",
        "clip-lora-eval",
        "clip-lora-predict",
        "clip-lora-export",
    }
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_eval_entry_is_train_main_with_do_train_false_after_the_recipe(monkeypatch):
    import train_clip_lora
    from clip_lora import verb_args

    seen = []
    monkeypatch.setattr(train_clip_lora, "main", lambda argv: seen.append(argv) or {})
    monkeypatch.setattr(verb_args, "precheck", lambda verb, argv: False)  # the argv main gets, not its checks
    assert run_verb("eval", ["r.yaml", "--adapter_name_or_path", "A"]) == 0
    assert (
        run_verb("eval", ["smoke", "--output_dir", "o"]) == 0
    )  # a packaged recipe's name counts as the recipe
    assert run_verb("eval", ["--output_dir", "o", "--do_train", "true"]) == 0
    assert seen == [
        ["r.yaml", "--do_train", "false", "--adapter_name_or_path", "A"],
        ["smoke", "--do_train", "false", "--output_dir", "o"],
        ["--do_train", "false", "--output_dir", "o", "--do_train", "true"],
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch_size", "0"], "error: --batch_size 0 must be a positive integer, e.g. 32."),
        (["--top_k", "-1"], "error: --top_k -1 must be a positive integer, e.g. 5."),
        (
            ["--output", "{missing}/p.csv"],
            "error: --output {missing}/p.csv: the folder {missing} does not exist;",
        ),
        (["--output", "{folder}.json"], "error: --output {folder}.json is a folder; pass a file name."),
        (
            ["--prompt_template", "a {} of {kind}"],
            "error: --prompt_template 'a {} of {kind}' has a field {kind}; only '{}' (the class name) is allowed.",
        ),
    ],
    ids=[
        "batch_size_0",
        "top_k_negative",
        "output_in_missing_folder",
        "output_is_a_folder",
        "template_field",
    ],
)
def test_flags_are_checked_before_the_model_loads(extra, message, tmp_path, capsys, monkeypatch):
    from clip_lora import predict

    monkeypatch.setattr(
        predict, "load_clip", lambda *a, **k: pytest.fail("the model loaded before the check")
    )
    (tmp_path / "a.png").write_bytes(b"not read either")
    (tmp_path / "dir.json").mkdir()
    paths = {"missing": str(tmp_path / "missing"), "folder": str(tmp_path / "dir")}

    def fill(text: str) -> str:
        return text.replace("{missing}", paths["missing"]).replace("{folder}", paths["folder"])

    argv = ["--labels", "a,b", str(tmp_path / "a.png"), *map(fill, extra)]
    capsys.readouterr()
    assert run_verb("predict", argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and err.startswith(fill(message))
