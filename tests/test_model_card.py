"""The model card: parses with ModelCard.load, its metadata and numbers are the run's, its snippet really runs."""

from __future__ import annotations

import csv
import re
import shutil

import pytest
from huggingface_hub import ModelCard

from clip_lora import model_card


@pytest.fixture(scope="module")
def local_card(trained_run, tmp_path_factory):
    """The card as an un-pushed run writes it (the snippet loads the output folder), in a copy of the run."""
    out = tmp_path_factory.mktemp("card") / "run"
    shutil.copytree(trained_run.output_dir, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    return out, ModelCard.load(model_card.write_model_card(out))


def test_metadata_and_model_index_match_all_results(trained_run):
    card = ModelCard.load(trained_run.output_dir / "README.md")
    results = trained_run.results
    data = card.data
    assert data.library_name == "peft" and data.license == model_card.LICENSE
    assert data.base_model is None  # a local folder is no Hub model id; the text names it instead
    assert data.datasets == ["frgfm/imagenette"]
    assert {"clip", "lora", "peft", "image-classification"} <= set(data.tags)
    (result,) = data.eval_results
    assert result.metric_type == "accuracy" and result.metric_value == results["eval_accuracy"]
    assert result.dataset_split == "validation"
    assert "model-index:" in card.content
    with open(trained_run.output_dir / "predictions.csv", newline="") as f:
        assert data.class_names == next(csv.reader(f))[3:]
    assert data.prompt_templates == ["a photo of a {}."]


def test_text_holds_the_runs_numbers_and_replaces_peft_template(trained_run):
    text = ModelCard.load(trained_run.output_dir / "README.md").text
    results = trained_run.results
    rows = {
        line.split("|")[1].strip() + "/" + line.split("|")[2].strip(): line
        for line in text.splitlines()
        if line.startswith("| zero-shot") or line.startswith("| LoRA")
    }
    assert (
        f"| {results['zero_shot_accuracy']:.4f} | {results['zero_shot_macro_f1']:.4f} |"
        in rows["zero-shot (base model)/val"]
    )
    assert (
        f"| {results['eval_accuracy']:.4f} | {results['eval_macro_f1']:.4f} |"
        in rows["LoRA, selected adapter/val"]
    )
    assert f"| {results['dev_accuracy']:.4f} |" in rows["LoRA, selected adapter/dev (selection)"]
    assert "| tench |" in text and "| parachute |" in text  # per-class table
    assert "| `lora_r` | `16` |" in text and "| `learning_rate` | `0.005` |" in text
    assert "**dev split** (10% of train" in text and "val split was used **once**" in text
    assert "[More Information Needed]" not in text  # PEFT's template README is gone


def test_selected_epoch_named_in_the_card_is_the_best_dev_epoch(trained_run):
    import json

    state = json.loads((trained_run.output_dir / "trainer_state.json").read_text())
    dev = [
        (e["eval_accuracy"], -e["epoch"], e["epoch"]) for e in state["log_history"] if "eval_accuracy" in e
    ]
    best_epoch = max(dev)[2]  # the first epoch with the best dev accuracy (Trainer keeps the first best)
    text = (trained_run.output_dir / "README.md").read_text()
    assert re.search(
        rf"; epoch {best_epoch:g} \(dev accuracy {max(dev)[0]:.4f}\) of {len(dev)} evaluations", text
    )


def test_snippet_runs_against_the_saved_adapter(local_card, image_root, tmp_path, monkeypatch, capsys):
    out, card = local_card
    code = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    assert str(out.resolve()) in code and "PeftModel.from_pretrained" in code
    with open(out / "predictions.csv", newline="") as f:
        row = next(csv.DictReader(f))
    shutil.copy(image_root / row["image"], tmp_path / "image.jpg")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "model-card-snippet", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own card
    label, prob = capsys.readouterr().out.strip().rsplit(" ", 1)
    assert label == row["prediction"]  # the snippet classifies like the run's final evaluation
    assert float(prob) == pytest.approx(float(row[row["prediction"]]), abs=1e-3)
