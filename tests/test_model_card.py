"""The model card states the run and nothing else: its metadata, numbers, data, selection (ties included) and a
snippet that really runs; no machine's absolute path; evaluation-only runs get an evaluation card."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest
from huggingface_hub import ModelCard

import train_clip_lora
from clip_lora import artifacts, card_text, model_card, provenance
from clip_lora.testing_utils import assert_distinct
from testing_utils import HUB_MODEL_ID, ROOT, smoke_argv


def _copy_run(trained_run, tmp_path_factory, name="run"):
    out = tmp_path_factory.mktemp("card") / name
    shutil.copytree(trained_run.output_dir, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    return out


@pytest.fixture(scope="module")
def local_card(trained_run, tmp_path_factory):
    """The card as an un-pushed run writes it, in a copy of the run."""
    out = _copy_run(trained_run, tmp_path_factory)
    return out, ModelCard.load(model_card.write_model_card(out))


def _absolute_paths_of_the_run(output_dir) -> list[str]:
    config = artifacts.read_json(output_dir / artifacts.RUN_CONFIG)
    paths = [config["model_name_or_path"], config["data_dir"], config["data_source"]["root"]]
    return [p for p in paths if p and p.startswith("/")] + [str(output_dir.resolve())]


def test_metadata_and_numbers_are_the_runs_and_name_no_dataset_for_a_local_folder(trained_run):
    card = ModelCard.load(trained_run.output_dir / "README.md")
    data, results = card.data, trained_run.results
    assert data.library_name == "peft" and data.license == model_card.LICENSE
    assert data.base_model is None  # a local folder is no Hub model id
    # The session's images are generated in the ImageNette folder layout: a local folder, not frgfm/imagenette.
    assert (
        artifacts.read_json(trained_run.output_dir / artifacts.RUN_CONFIG)["data_source"]["kind"]
        == "local_folder"
    )
    assert data.datasets is None and data.eval_results is None and "model-index" not in card.content
    assert "imagenette" not in (data.tags or []) and "frgfm" not in card.content
    assert "a local image folder in the ImageNette folder layout" in card.text
    with open(trained_run.output_dir / "predictions.csv", newline="") as f:
        assert data.class_names == next(csv.reader(f))[3:]
    assert data.prompt_templates == ["a photo of a {}"]  # the default, the seed's
    rows = {
        line.split("|")[1].strip() + "/" + line.split("|")[2].strip(): line
        for line in card.text.splitlines()
        if line.startswith(("| zero-shot", "| LoRA"))
    }
    zero_shot = f"| {results['zero_shot_accuracy']:.4f} | {results['zero_shot_macro_f1']:.4f} |"
    assert zero_shot in rows["zero-shot (base model)/val"]
    assert f"| {results['eval_accuracy']:.4f} |" in rows["LoRA, selected adapter/val"]
    assert f"| {results['dev_accuracy']:.4f} |" in rows["LoRA, selected adapter/dev (selection)"]
    assert "| `lora_r` | `16` |" in card.text and "Trainable parameters: " in card.text
    assert "[More Information Needed]" not in card.text  # PEFT's template README is gone


def test_whole_number_settings_print_as_integers(trained_run):
    # lora_alpha, num_train_epochs and max_grad_norm are float fields: the card shows 32, not 32.0.
    card = ModelCard.load(trained_run.output_dir / "README.md")
    config = artifacts.read_json(trained_run.output_dir / artifacts.RUN_CONFIG)
    rows = dict(re.findall(r"^\| `(\w+)` \| `(.*)` \|$", card.text, flags=re.MULTILINE))
    assert rows["lora_alpha"] == str(int(config["lora_alpha"])) and isinstance(config["lora_alpha"], float)
    assert rows["num_train_epochs"] == str(int(config["num_train_epochs"]))
    assert not [value for value in rows.values() if re.fullmatch(r"-?\d+\.0", value)], rows
    assert f"max_grad_norm {int(config['max_grad_norm'])}" in card.text
    assert card_text.setting_text(1e-4) == "0.0001" and card_text.setting_text(0.5) == "0.5"


def test_no_absolute_path_of_the_machine_in_pushed_or_local_cards(trained_run, local_card):
    out, local = local_card
    for card, run_dir in (
        (ModelCard.load(trained_run.output_dir / "README.md"), trained_run.output_dir),
        (local, out),
    ):
        for path in _absolute_paths_of_the_run(run_dir):
            assert path not in card.content
    pushed_code = re.search(r"```python\n(.*?)```", (trained_run.output_dir / "README.md").read_text(), re.S)[
        1
    ]
    assert f'"{card_text.BASE_PLACEHOLDER}", "{HUB_MODEL_ID}"' in pushed_code  # pushed: the Hub id
    assert (
        f"--adapter_name_or_path {HUB_MODEL_ID} image.jpg"
        in (trained_run.output_dir / "README.md").read_text()
    )
    assert f'"{card_text.BASE_PLACEHOLDER}", "{card_text.ADAPTER_PLACEHOLDER}"' in local.text  # not pushed


def test_selection_names_the_kept_epoch_every_tie_and_what_broke_it(trained_run):
    state = json.loads((trained_run.output_dir / "trainer_state.json").read_text())
    dev = [e for e in state["log_history"] if "eval_accuracy" in e]
    best = max(e["eval_accuracy"] for e in dev)
    tied = [e for e in dev if e["eval_accuracy"] == best]
    kept = min(
        tied, key=lambda e: (e["eval_loss"], e["step"])
    )  # accuracy, then the lower dev loss, then the first
    assert state["best_global_step"] == kept["step"] and state["best_metric"] == best
    # The adapter saved and reported is the kept epoch's: its dev numbers are that evaluation's.
    assert trained_run.results["dev_accuracy"] == best
    assert trained_run.results["dev_loss"] == pytest.approx(kept["eval_loss"], rel=1e-5)
    text = (trained_run.output_dir / "README.md").read_text()
    if len(tied) > 1:
        epochs = card_text._epochs([e["epoch"] for e in tied])
        expected = (
            f"epochs {epochs} tied at {best:.4f} dev accuracy; epoch {kept['epoch']:g} kept: the lowest dev loss, "
            f"{kept['eval_loss']:.4f}"
        )
    else:
        expected = f"epoch {kept['epoch']:g} had the best dev accuracy ({best:.4f}) and was kept"
    assert f"of {len(dev)} evaluations, {expected}" in text


def test_public_datasets_are_named_in_the_metadata(trained_run, tmp_path_factory, image_root, tmp_path):
    (tmp_path / "imagenette2-320").symlink_to(image_root)  # the folder the fast.ai archive extracts to
    source = provenance.describe_data("imagenette", str(tmp_path), "320")
    assert source["kind"] == "fastai_archive" and source["hub_id"] == "frgfm/imagenette"
    assert provenance.describe_data("imagenette", str(image_root), "320")["kind"] == "local_folder"
    assert provenance.describe_data("someone/flowers", None)["kind"] == "hub"
    for recorded, expected in (
        (source, "frgfm/imagenette"),
        (provenance.describe_data("someone/flowers", None), "someone/flowers"),
    ):
        out = _copy_run(trained_run, tmp_path_factory, expected.replace("/", "-"))
        config = artifacts.read_json(out / artifacts.RUN_CONFIG)
        artifacts.write_json(out / artifacts.RUN_CONFIG, {**config, "data_source": recorded})
        card = ModelCard.load(model_card.write_model_card(out))
        assert card.data.datasets == [expected]
        (result,) = card.data.eval_results
        assert result.dataset_type == expected and result.metric_value == trained_run.results["eval_accuracy"]


def test_snippet_runs_against_the_saved_adapter(
    local_card, tiny_model_dir, image_root, tmp_path, monkeypatch, capsys
):
    out, card = local_card
    code = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    code = code.replace(card_text.BASE_PLACEHOLDER, str(tiny_model_dir)).replace(
        card_text.ADAPTER_PLACEHOLDER, str(out)
    )
    with open(out / "predictions.csv", newline="") as f:
        row = next(csv.DictReader(f))
    shutil.copy(image_root / row["image"], tmp_path / "image.jpg")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "model-card-snippet", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own card
    label, prob = capsys.readouterr().out.strip().rsplit(" ", 1)
    assert label == row["prediction"]  # the snippet classifies like the run's final evaluation
    assert float(prob) == pytest.approx(float(row[row["prediction"]]), abs=1e-3)


def test_evaluation_only_run_gets_an_evaluation_card(trained_run, tiny_model_dir, image_root, tmp_path):
    argv = smoke_argv(
        tiny_model_dir,
        image_root,
        tmp_path,
        "--do_train",
        "false",
        "--adapter_name_or_path",
        str(trained_run.output_dir),
    )
    results = train_clip_lora.main(argv)
    card = ModelCard.load(tmp_path / "README.md")
    assert "## Training hyper-parameters" not in card.text and "Trainable parameters" not in card.text
    assert "Trained on" not in card.text and "nothing was trained in this run" in card.text
    assert "No training in this run" in card.text and "dev split" not in card.text
    assert f"| evaluated adapter | val | {results['eval_accuracy']:.4f} |" in card.text
    for path in _absolute_paths_of_the_run(tmp_path):
        assert path not in card.content
    report_md = (tmp_path / artifacts.CLASSIFICATION_REPORT_MD).read_text()
    assert report_md.startswith(
        f"# Classification report: val split, adapter {trained_run.output_dir.name} (evaluation only)"
    )
    report = artifacts.read_json(tmp_path / artifacts.CLASSIFICATION_REPORT_JSON)
    assert report["split"] == "val" and "evaluation only" in report["model"]


def test_training_run_reports_say_split_and_model(trained_run):
    report_md = (trained_run.output_dir / artifacts.CLASSIFICATION_REPORT_MD).read_text()
    assert report_md.startswith(
        "# Classification report: val split, LoRA adapter selected on dev (100 images)"
    )
    report = artifacts.read_json(trained_run.output_dir / artifacts.CLASSIFICATION_REPORT_JSON)
    assert (report["split"], report["model"]) == ("val", "LoRA adapter selected on dev")


def test_readme_states_the_demo_numbers_of_the_demo_run(trained_run):
    """trained_run is `make demo`'s run (same recipe, tiny model and generated images) with a fake push added."""
    readme = (ROOT / "README.md").read_text()
    zero_shot = re.search(r"Its zero-shot accuracy is \*\*([0-9.]+)\*\*", readme)[1]
    fine_tuned = re.search(r"the fine-tuned one \*\*([0-9.]+)\*\*", readme)[1]
    assert zero_shot == f"{trained_run.results['zero_shot_accuracy']:.4f}"
    assert fine_tuned == f"{trained_run.results['eval_accuracy']:.4f}"


def test_demo_card_shows_calibration_and_the_control_set_from_the_artifacts(trained_run):
    """The demo run's card: both sections, every number as the run's calibration / temperature / control files say."""
    out = trained_run.output_dir
    card = (out / artifacts.MODEL_CARD).read_text()
    calibration = artifacts.read_json(out / artifacts.CALIBRATION)
    fit = artifacts.read_json(out / artifacts.TEMPERATURE)
    control = artifacts.read_json(out / artifacts.CONTROL_JSON)
    assert (
        card.index("## Calibration (val)")
        < card.index("## Beyond the task")
        < card.index("## How the adapter")
    )
    for label, name in (
        ("zero-shot (base model)", "zero_shot"),
        ("fine-tuned, as trained (T = 1)", "fine_tuned"),
    ):
        m = calibration["models"][name]
        row = f"| {label} | {m['ece']:.4f} | {m['nll']:.4f} | {m['brier']:.4f} | {m['accuracy']:.4f} |"
        assert row in card
    assert f"the {fit['dev_images']} dev images only" in card
    if not fit["fitted"]:  # the demo's dev split is all right: no NLL minimum, T stays 1 and the card says so
        assert fit["temperature"] == 1.0 and fit["note"] in card
    assert f"| zero-shot (base model) | {control['zero_shot_accuracy']:.4f} |" in card
    assert f"| fine-tuned (adapter) | {control['eval_accuracy']:.4f} |" in card
    assert f"| difference | {control['difference']:+.4f} |" in card
    assert trained_run.results["control_eval_accuracy"] == control["eval_accuracy"]
    assert trained_run.results["eval_ece"] == calibration["models"]["fine_tuned"]["ece"]


def test_each_number_of_the_results_table_is_in_its_own_row():
    """Hand-built results, every number distinct at the card's 4 decimals: the trained run's fixture has dev and val
    accuracies equal to 4 decimals, so a dev row showing val numbers passed there (issue 29)."""
    results = {
        "zero_shot_accuracy": 0.1234,
        "zero_shot_macro_f1": 0.2345,
        "eval_accuracy": 0.3456,
        "eval_macro_f1": 0.4567,
        "dev_accuracy": 0.5678,
        "dev_macro_f1": 0.6789,
    }
    assert_distinct(places=4, **results)
    header = "| model | split | accuracy | macro F1 |\n|---|---|---:|---:|\n"
    assert model_card._results_table(results, trained=True, adapter=None) == header + (
        "| zero-shot (base model) | val | 0.1234 | 0.2345 |\n"
        "| LoRA, selected adapter | val | 0.3456 | 0.4567 |\n"
        "| LoRA, selected adapter | dev (selection) | 0.5678 | 0.6789 |\n"
    )
    assert model_card._results_table(results, trained=False, adapter="an/adapter") == header + (
        "| zero-shot (base model) | val | 0.1234 | 0.2345 |\n| evaluated adapter | val | 0.3456 | 0.4567 |\n"
    )
