"""clip-lora-export: a plain CLIPModel with the LoRA merged in; same logits as base+adapter, no adapter files."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import CLIPModel, CLIPProcessor

from clip_lora.cli import run as run_verb
from clip_lora.modeling import load_adapter, load_clip


def _logits(model, processor):
    torch.manual_seed(0)
    pixels = torch.randn(4, 3, 32, 32)
    text = processor.tokenizer(
        ["a photo of a tench.", "a photo of a church."], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        return model(pixel_values=pixels, **text).logits_per_image


def test_merged_export_matches_base_plus_adapter_and_loads_with_transformers_alone(
    trained_run, tiny_model_dir, tmp_path
):
    out = tmp_path / "merged"
    # No --model_name_or_path: the base comes from the adapter's adapter_config.json.
    assert (
        run_verb("export", ["--adapter_name_or_path", str(trained_run.output_dir), "--output_dir", str(out)])
        == 0
    )
    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
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


def test_output_dir_that_is_a_file_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    from clip_lora import export

    monkeypatch.setattr(export, "load_clip", lambda *a, **k: pytest.fail("the model loaded before the check"))
    (tmp_path / "merged").write_text("a file")
    argv = ["--adapter_name_or_path", str(tmp_path / "adapter"), "--output_dir", str(tmp_path / "merged")]
    assert run_verb("export", argv) == 2
    assert capsys.readouterr().err == f"error: --output_dir {tmp_path / 'merged'} is a file; pass a folder.\n"
