"""Local path or Hub id (clip_lora/sources.py): a path that looks local is never sent to the Hub validator, a missing
folder says so (with the nearest match); eval never overwrites another run by accident; exact flag names only;
an adapter recording no base is refused; LoRA targets are judged per tower.

Run: python -m pytest tests/test_sources.py -q
"""

from __future__ import annotations

import json
import shutil

import pytest
from huggingface_hub.utils import HFValidationError, validate_repo_id

from clip_lora import artifacts, run_dir, sources
from clip_lora.arguments import parse_args
from clip_lora.cli import run as run_verb
from clip_lora.modeling import apply_lora, load_clip
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS, smoke_argv

pytestmark = pytest.mark.usefixtures("image_check_cache")


def one_error_line(verb: str, argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert run_verb(verb, argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and "HFValidationError" not in err, err[-2000:]
    assert len(lines) == 1 and err.rstrip().splitlines()[-1] == lines[0], err[-2000:]
    return lines[0]


SPELLINGS = ["gpt2", "openai/clip-vit-base-patch16", "a/b/c", "a..b", "a--b", "-a", "a.", "x.git", "café/x",
             "name with space", "o/" + "n" * 97, "o/" + "n" * 96, "_x/y", "x/", "/x", "a/b.c-d_e"]  # fmt: skip


def test_the_hub_spelling_is_huggingface_hubs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing exists here: spelling alone decides
    for value in SPELLINGS:
        try:
            validate_repo_id(value)
            valid = True
        except HFValidationError:
            valid = False
        assert sources.is_hub_id(value) == valid, value


def test_local_looking_values_are_paths_and_a_missing_one_names_the_nearest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    for value in ("./m", "../m", "/m", "~/m", ".", "runs/dem0", "runs/demo-assets/modl", "a..b", "x y"):
        assert sources.looks_local(value), value
    assert not sources.looks_local("openai/clip-vit-base-patch16") and not sources.looks_local("gpt2")
    assert sources.resolve("runs/demo", "--f").resolve() == tmp_path / "runs" / "demo"
    assert sources.resolve("openai/clip-vit-base-patch16", "--f") == "openai/clip-vit-base-patch16"
    with pytest.raises(
        Exception, match=r"^--f runs/dem0: no such folder \(relative to .*\); did you mean runs/demo\?$"
    ):
        sources.resolve("runs/dem0", "--f")


def test_a_path_under_runs_is_local_before_any_run_exists_and_others_only_when_their_folder_does(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a fresh clone before `make demo`: no runs/ folder, no data/ folder
    assert sources.looks_local(
        "runs/demo"
    )  # never a Hub id: "run make demo first", not "cannot reach the Hub"
    assert not sources.looks_local("data/model")  # a Hub spelling whose first folder is not here
    (tmp_path / "data").mkdir()
    assert sources.looks_local("data/model")


@pytest.mark.parametrize("value", ["runs/demo-assets/modl", "a..b", "~/no/such"])
def test_a_local_looking_model_that_does_not_exist_is_one_line_in_every_verb(
    value, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo-assets" / "model").mkdir(parents=True)
    make_image_folder(tmp_path / "imgs", ["x"], 1, 1, size=8)
    image = str(next((tmp_path / "imgs").rglob("*.JPEG")))
    expected = f"error: --model_name_or_path {value}: no such folder"
    assert one_error_line("train", ["--model_name_or_path", value], capsys).startswith(expected)
    assert one_error_line("eval", ["--model_name_or_path", value], capsys).startswith(expected)
    argv = ["--model_name_or_path", value, "--labels", "a,b", image]
    assert one_error_line("predict", argv, capsys).startswith(expected)
    if value == "runs/demo-assets/modl":  # a one-slash-deeper typo: the close folder is named
        assert "did you mean runs/demo-assets/model?" in one_error_line("predict", argv, capsys)
    with pytest.raises(Exception, match="no such folder"):  # the library path too, not only the CLI's check
        load_clip(value)


def test_the_smoke_recipe_from_another_folder_and_other_missing_sources_are_one_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the recipe's paths are relative to the checkout
    line = one_error_line("train", ["smoke", "--output_dir", str(tmp_path / "o")], capsys)
    assert line.startswith(
        f"error: --model_name_or_path runs/demo-assets/model: no such folder (relative to {tmp_path})"
    )
    line = one_error_line("train", ["--dataset_name", "./my-data", "--output_dir", "o"], capsys)
    assert line.startswith("error: --dataset_name ./my-data: no such folder")
    line = one_error_line("eval", ["--adapter_name_or_path", "runs/x/y", "--output_dir", "o"], capsys)
    assert line.startswith("error: --adapter_name_or_path runs/x/y: no such folder")
    line = one_error_line("app", ["./runs/dem0"], capsys)
    assert line.startswith("error: clip-lora app ./runs/dem0: no such run folder")
    assert not (tmp_path / "o").exists()


def test_eval_never_replaces_another_run_without_overwrite(small_run, tiny_model_dir, tmp_path, capsys):
    data, reference, _ = small_run
    finished = tmp_path / "finished"
    shutil.copytree(reference, finished)
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    interrupted = tmp_path / "interrupted"
    (interrupted / "checkpoint-1").mkdir(parents=True)
    artifacts.write_json(interrupted / artifacts.RUN_CONFIG, {"do_train": True})
    evaluated = tmp_path / "evaluated"
    evaluated.mkdir()
    artifacts.write_json(evaluated / artifacts.RUN_CONFIG, {"do_train": False})
    run_dir.mark_finished(evaluated)
    for out, what in ((finished, "a finished training run"), (interrupted, "an interrupted training run"),
                      (evaluated, "a finished evaluation")):  # fmt: skip
        line = one_error_line("eval", smoke_argv(tiny_model_dir, data, out), capsys)
        assert line == (
            f"error: --output_dir {out} holds {what}; evaluating into it would replace its README.md, "
            "all_results.json, predictions and run_config.json: choose another --output_dir, or pass "
            "--overwrite_output_dir to replace it."
        )
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before
    # an interrupted evaluation is simply redone; --overwrite_output_dir replaces (the folder is cleared)
    (evaluated / artifacts.RUN_COMPLETE).unlink()
    assert (
        run_dir.prepare(parse_args(smoke_argv(tiny_model_dir, data, evaluated, "--do_train", "false"))[3], {})
        is None
    )
    argv = smoke_argv(
        tiny_model_dir, data, interrupted, "--do_train", "false", "--overwrite_output_dir", "true"
    )
    assert run_dir.prepare(parse_args(argv)[3], {}) is None and not (interrupted / "checkpoint-1").exists()
    # never the adapter it is about to evaluate
    argv = smoke_argv(tiny_model_dir, data, finished, "--adapter_name_or_path", str(finished))
    line = one_error_line("eval", [*argv, "--overwrite_output_dir", "true"], capsys)
    assert line.startswith("error: --overwrite_output_dir would delete the adapter it loads")
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before


@pytest.fixture()
def baseless_adapter(tiny_model_dir, tmp_path):
    model, _ = load_clip(str(tiny_model_dir))
    adapter = tmp_path / "adapter"
    apply_lora(model, 2, 4, 0.0, ["q_proj"]).save_pretrained(adapter)
    config = json.loads((adapter / artifacts.ADAPTER_CONFIG).read_text())
    config.pop("base_model_name_or_path")
    (adapter / artifacts.ADAPTER_CONFIG).write_text(json.dumps(config))
    return adapter


def test_an_adapter_recording_no_base_is_refused_not_run_on_the_default_model(
    baseless_adapter, tiny_model_dir, tmp_path, capsys
):
    make_image_folder(tmp_path / "imgs", ["x"], 1, 1, size=8)
    image = str(next((tmp_path / "imgs").rglob("*.JPEG")))
    expected = (
        f"error: adapter {baseless_adapter} records no base model (base_model_name_or_path in adapter_config.json); "
        "pass the one it was trained on with --model_name_or_path."
    )
    argv = ["--adapter_name_or_path", str(baseless_adapter), "--labels", "a,b", image]
    assert one_error_line("predict", argv, capsys) == expected
    argv = [
        "--adapter_name_or_path",
        str(baseless_adapter),
        "--labels",
        "a,b",
        "--output_dir",
        str(tmp_path / "m"),
    ]
    assert one_error_line("export", argv, capsys) == expected
    capsys.readouterr()
    assert run_verb("predict", ["--model_name_or_path", str(tiny_model_dir), "--adapter_name_or_path",
                                str(baseless_adapter), "--labels", "a,b", image]) == 0  # fmt: skip


LORA_TARGETS = [
    (
        "vision",
        "token_embedding",
        "token_embedding matches no module of the vision tower (--lora_towers vision)",
    ),
    (
        "text",
        "q_proj,patch_embedding",
        "patch_embedding matches no module of the text tower (--lora_towers text)",
    ),
    ("both", "layer_norm1", "layer_norm1 names LayerNorm modules, which LoRA cannot wrap"),
    ("vision", "mlp", "mlp names CLIPMLP modules, which LoRA cannot wrap"),
    ("both", "q_proj,no_such", "no_such not found in CLIPModel"),
]


def test_lora_targets_the_chosen_towers_lack_or_lora_cannot_wrap_are_one_line(
    tiny_model_dir, tmp_path, capsys
):
    from clip_lora.errors import ModelError

    for towers, targets, message in LORA_TARGETS:
        with pytest.raises(ModelError) as refused:
            apply_lora(load_clip(str(tiny_model_dir))[0], 2, 4, 0.0, targets.split(","), towers)
        assert str(refused.value).startswith(f"--lora_target_modules {message}"), str(refused.value)
    assert apply_lora(load_clip(str(tiny_model_dir))[0], 2, 4, 0.0, ["token_embedding"], "text") is not None
    # through the CLI, as the example: one line, not PEFT's traceback
    data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=3, val_per_class=1, size=16)
    argv = smoke_argv(tiny_model_dir, data, tmp_path / "out", "--lora_towers", "vision")
    line = one_error_line("train", [*argv, "--lora_target_modules", "token_embedding"], capsys)
    assert line == (
        f"error: --lora_target_modules {LORA_TARGETS[0][2]}; choose modules of those towers, e.g. "
        "q_proj,k_proj,v_proj,out_proj, or another --lora_towers."
    )


@pytest.mark.parametrize(
    "verb, argv, start",
    [
        (
            "train",
            ["--learning_rat", "0.1"],
            "error: unknown argument(s): --learning_rat 0.1 (did you mean --learning_rate?)",
        ),
        (
            "train",
            ["--lora_r", "4", "--output", "o"],
            "error: unknown argument(s): --output o (did you mean --output_dir?)",
        ),
        (
            "eval",
            ["--adapter", "a"],
            "error: unknown argument(s): --adapter a (did you mean --adapter_name_or_path?)",
        ),
        (
            "predict",
            ["--out", "p.csv", "x.jpg"],
            "error: unrecognized arguments: --out (did you mean --output?)",
        ),
        ("export", ["--adapter", "a", "--output_dir", "o"], "error: the following arguments are required"),
        ("app", ["runs/x", "--po", "1"], "error: unrecognized arguments: --po 1 (did you mean --port?)"),
    ],
)
def test_flags_are_matched_by_their_exact_names(verb, argv, start, capsys):
    assert one_error_line(verb, argv, capsys).startswith(start)


def test_a_model_path_with_a_tilde_is_the_folder_in_home(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(tiny_model_dir.parent))
    value = f"~/{tiny_model_dir.name}"
    assert sources.resolve(value, "--model_name_or_path") == tiny_model_dir
    model, _ = load_clip(value)  # transformers itself would take "~/..." for a Hub id
    assert model.config.name_or_path == str(tiny_model_dir.resolve())
