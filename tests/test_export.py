"""clip-lora export: a plain CLIPModel with the LoRA merged in (same logits as base+adapter, no adapter files) that
carries its classes and prompts, so the standard transformers pipeline reproduces the run's predictions."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from peft import PeftModel
from PIL import Image
from transformers import (
    AutoConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPVisionModelWithProjection,
    pipeline,
)

from clip_lora import artifacts
from clip_lora.cli import run as run_verb
from clip_lora.export import read_class_embeddings, read_class_prompts
from clip_lora.modeling import load_adapter, load_clip


def _logits(model, processor):
    torch.manual_seed(0)
    pixels = torch.randn(4, 3, 32, 32)
    text = processor.tokenizer(
        ["a photo of a tench.", "a photo of a church."], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        return model(pixel_values=pixels, **text).logits_per_image


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "merged"
    # No --model_name_or_path: the base comes from the adapter's adapter_config.json; classes from its card.
    argv = [
        "--adapter_name_or_path",
        str(trained_run.output_dir),
        "--output_dir",
        str(out),
        "--with_text_embeddings",
    ]
    assert run_verb("export", argv) == 0
    return out


def _val_rows(trained_run):
    with open(trained_run.output_dir / artifacts.PREDICTIONS, newline="") as f:
        return list(csv.DictReader(f))


def test_merged_export_matches_base_plus_adapter_and_loads_with_transformers_alone(
    trained_run, tiny_model_dir, exported
):
    out = exported
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "class_prompts.json", "class_embeddings.safetensors"} <= files
    assert not {name for name in files if name.startswith("adapter")}
    merged = CLIPModel.from_pretrained(out).eval()  # transformers alone
    processor = CLIPProcessor.from_pretrained(out)
    assert not isinstance(merged, PeftModel) and not any(
        "lora" in name for name, _ in merged.named_parameters()
    )
    base, _ = load_clip(str(tiny_model_dir))
    adapted = load_adapter(base, str(trained_run.output_dir)).eval()
    expected = _logits(adapted, processor)
    torch.testing.assert_close(_logits(merged, processor), expected, atol=1e-4, rtol=0)
    with adapted.disable_adapter():  # the merge changed something: the adapter is not a no-op
        assert (_logits(adapted, processor) - expected).abs().max() > 1e-2


def test_refuses_a_non_empty_output_dir(trained_run, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert (
        run_verb(
            "export", ["--adapter_name_or_path", str(trained_run.output_dir), "--output_dir", str(tmp_path)]
        )
        == 2
    )
    assert "not empty" in capsys.readouterr().err


def test_standard_pipeline_on_the_export_reproduces_predictions_csv(trained_run, exported, image_root):
    """docs/outputs.md's recipe: class names from config.id2label, the template from class_prompts.json."""
    config = AutoConfig.from_pretrained(exported)
    class_names, templates = read_class_prompts(exported)
    with open(trained_run.output_dir / artifacts.PREDICTIONS, newline="") as f:
        assert list(config.id2label.values()) == class_names == next(csv.reader(f))[3:]
    assert config.label2id == {name: i for i, name in enumerate(class_names)}
    assert templates == ["a photo of a {}"]  # the smoke run's: the default
    classify = pipeline("zero-shot-image-classification", model=str(exported))
    rows = _val_rows(trained_run)
    answers = classify(
        [str(image_root / row["image"]) for row in rows],
        candidate_labels=list(config.id2label.values()),
        hypothesis_template=templates[0],
    )
    assert len(rows) == 100
    assert [answer[0]["label"] for answer in answers] == [row["prediction"] for row in rows]


def test_class_embeddings_classify_with_the_vision_tower_alone(trained_run, exported, image_root):
    embeds, scale = read_class_embeddings(exported)
    class_names, _ = read_class_prompts(exported)
    assert embeds.shape[0] == len(class_names) and torch.allclose(
        embeds.norm(dim=-1), torch.ones(len(class_names))
    )
    vision = CLIPVisionModelWithProjection.from_pretrained(exported).eval()
    assert not any(name.startswith("text_model") for name, _ in vision.named_parameters())
    processor = CLIPImageProcessor.from_pretrained(exported)
    rows = _val_rows(trained_run)
    images = [Image.open(image_root / row["image"]).convert("RGB") for row in rows]
    with torch.no_grad():
        image_embeds = vision(**processor(images=images, return_tensors="pt")).image_embeds
    logits = scale * torch.nn.functional.normalize(image_embeds, dim=-1) @ embeds.T
    assert [class_names[i] for i in logits.argmax(dim=-1).tolist()] == [row["prediction"] for row in rows]
    probs = logits.softmax(dim=-1)
    expected = torch.tensor([[float(row[name]) for name in class_names] for row in rows])
    torch.testing.assert_close(probs, expected, atol=1e-4, rtol=0)  # the evaluation's probabilities


def test_an_adapter_without_card_needs_labels(trained_run, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for name in artifacts.ADAPTER_FILES:
        (adapter / name).write_bytes((trained_run.output_dir / name).read_bytes())
    argv = ["--adapter_name_or_path", str(adapter), "--output_dir", str(tmp_path / "out")]
    assert run_verb("export", argv) == 2
    assert "--labels" in capsys.readouterr().err
    assert run_verb("export", [*argv, "--labels", ",".join("abcdefghij")]) == 0
    assert json.loads((tmp_path / "out" / "class_prompts.json").read_text())["class_names"] == list(
        "abcdefghij"
    )


def test_predict_reads_classes_and_prompts_from_the_export(trained_run, exported, image_root, capsys):
    row = _val_rows(trained_run)[0]
    capsys.readouterr()
    assert (
        run_verb(
            "predict", ["--model_name_or_path", str(exported), "--top_k", "1", str(image_root / row["image"])]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[-1].split()[1:-1] == row["prediction"].split()


def test_output_dir_that_is_a_file_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    from clip_lora import export

    monkeypatch.setattr(export, "load_clip", lambda *a, **k: pytest.fail("the model loaded before the check"))
    (tmp_path / "merged").write_text("a file")
    argv = ["--adapter_name_or_path", str(tmp_path / "adapter"), "--output_dir", str(tmp_path / "merged")]
    assert run_verb("export", argv) == 2
    assert capsys.readouterr().err == f"error: --output_dir {tmp_path / 'merged'} is a file; pass a folder.\n"
