"""modeling: LoRA placement and counts, adapter save/reload, refusing adapters that cannot be used."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from PIL import Image
from transformers import CLIPModel

from clip_lora.modeling import ModelError, apply_lora, count_parameters, load_adapter, load_clip
from clip_lora.testing_utils import vit_b16_clip_config

SEED_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@pytest.mark.parametrize(
    ("towers", "expected"), [("both", 1_966_080), ("vision", 1_179_648), ("text", 786_432)]
)
def test_seed_config_trainable_parameters_on_vit_b16_shape(towers, expected):
    # Built on the meta device: the shape of openai/clip-vit-base-patch16 without 600 MB of random weights.
    with torch.device("meta"):
        model = apply_lora(CLIPModel(vit_b16_clip_config()), 16, 32, 0.1, SEED_TARGETS, towers)
    trainable, total = count_parameters(model)
    assert trainable == expected
    assert total == 149_620_737 + trainable  # the base ViT-B/16 CLIP is frozen, untouched


def test_lora_only_on_chosen_tower(tiny_model_dir):
    model, _ = load_clip(str(tiny_model_dir))
    model = apply_lora(model, 4, 8, 0.0, SEED_TARGETS, towers="vision")
    adapted = {name for name, p in model.named_parameters() if p.requires_grad}
    assert adapted and all("vision_model" in name and "lora_" in name for name in adapted)


def test_unknown_target_module_is_one_clear_error(tiny_model_dir):
    model, _ = load_clip(str(tiny_model_dir))
    with pytest.raises(ModelError, match="qkv not found"):
        apply_lora(model, 4, 8, 0.0, ["qkv"])


def _randomise_lora(model):
    # LoRA B starts at zero (adapter == base); give it values so save/reload is a real comparison.
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)


def test_save_reload_gives_identical_logits(tiny_model_dir, tmp_path):
    model, processor = load_clip(str(tiny_model_dir))
    model = apply_lora(model, 4, 8, 0.0, SEED_TARGETS)
    _randomise_lora(model)
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    inputs = processor(
        text=["a photo of a tench.", "a photo of a church."], return_tensors="pt", padding=True
    )
    pixels = torch.randn(3, 3, 32, 32)
    model.eval()
    before = model(**inputs, pixel_values=pixels).logits_per_image
    base, _ = load_clip(str(tiny_model_dir))
    reloaded = load_adapter(base, str(tmp_path / "adapter")).eval()
    assert isinstance(reloaded, PeftModel)
    after = reloaded(**inputs, pixel_values=pixels).logits_per_image
    assert torch.equal(before, after)
    with reloaded.disable_adapter():
        assert not torch.allclose(reloaded(**inputs, pixel_values=pixels).logits_per_image, after)


def test_adapter_folder_without_config_or_safetensors_is_refused(tiny_model_dir, tmp_path):
    model, _ = load_clip(str(tiny_model_dir))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no adapter_config.json"):
        load_adapter(model, str(tmp_path / "empty"))
    bin_only = tmp_path / "bin_only"  # a folder name without "pickle": the message itself must say it
    bin_only.mkdir()
    (bin_only / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (bin_only / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError) as refused:
        load_adapter(model, str(bin_only))
    assert str(refused.value).startswith(
        f"{bin_only} has no adapter_model.safetensors (pickle .bin adapters are refused: they can run code)"
    )


def test_missing_model_path_is_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match="--model_name_or_path .*/nowhere: no such folder"):
        load_clip(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load CLIP"):  # there, but not a model
        load_clip(str(tmp_path / "empty"))


# ---------------------------------------------------------------- every broken adapter is one ModelError line
def _break_adapter(adapter, case: str) -> str:
    """Damage a saved adapter in one way; returns the path to pass as --adapter_name_or_path."""
    weights, config = adapter / "adapter_model.safetensors", adapter / "adapter_config.json"
    if case == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif case == "invalid_config_json":
        config.write_text('{"peft_type": "LORA", ')
    elif case == "config_not_an_object":
        config.write_text("[1, 2]")
    elif case == "unknown_peft_type":
        config.write_text(json.dumps({**json.loads(config.read_text()), "peft_type": "MAGIC"}))
    elif case == "targets_modules_the_base_lacks":
        config.write_text(json.dumps({**json.loads(config.read_text()), "target_modules": ["no_such_layer"]}))
    elif case == "path_is_a_file":
        return str(weights)
    elif case == "missing_folder":
        return str(adapter / "gone")
    return str(adapter)


ADAPTER_CASES = {
    "truncated_weights": "error: cannot load adapter {path} (",
    "invalid_config_json": "error: {path}/adapter_config.json is not valid JSON (",
    "config_not_an_object": "error: adapter {path}: adapter_config.json must hold a JSON object.",
    "unknown_peft_type": "error: adapter {path} has peft_type 'MAGIC'; this project loads LoRA adapters only",
    "targets_modules_the_base_lacks": "error: cannot load adapter {path} (",
    "path_is_a_file": "error: --adapter_name_or_path {path} is a file; pass the folder that holds",
    "missing_folder": "error: --adapter_name_or_path {path}: no such folder; the nearest existing folder is",
}


@pytest.mark.parametrize("case", list(ADAPTER_CASES))
def test_broken_adapter_is_one_line_in_every_verb(case, tiny_model_dir, tmp_path, capsys):
    from clip_lora.cli import run as run_verb

    model, _ = load_clip(str(tiny_model_dir))
    apply_lora(model, 2, 4, 0.0, ["q_proj", "v_proj"]).save_pretrained(tmp_path / "adapter")
    path = _break_adapter(tmp_path / "adapter", case)
    expected = ADAPTER_CASES[case].format(path=path)
    with pytest.raises(ModelError) as caught:
        load_adapter(load_clip(str(tiny_model_dir))[0], path)
    assert f"error: {caught.value}".startswith(expected)
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    verbs = {
        "predict": ["--adapter_name_or_path", path, "--labels", "a,b", str(image)],
        "export": [
            "--adapter_name_or_path",
            path,
            "--labels",
            "a,b",
            "--output_dir",
            str(tmp_path / "merged"),
        ],
    }
    for verb, argv in verbs.items():
        capsys.readouterr()
        assert run_verb(verb, argv) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and "Traceback" not in err and lines[0].startswith(expected), (verb, err)
        assert "cannot load CLIP" not in err
