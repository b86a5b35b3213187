"""WiSE-FT: with the adapter scaled by alpha, a LoRA layer's output is exactly (1 - alpha) * zero-shot + alpha *
fine-tuned (hypothesis over alpha), alpha 0 and 1 are the endpoints, and the scalings come back after the block."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peft import LoraConfig, get_peft_model

from clip_lora.wise_ft import eval_sets, lora_scaled


@pytest.fixture(scope="module")
def lora_model():
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at 0 (adapter = identity); a trained one is not
                p.normal_()
    return model.eval()


X = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_alpha_0_is_the_base_model_and_1_the_adapter(lora_model):
    with lora_model.disable_adapter():
        base = lora_model(X)
    adapted = lora_model(X)
    assert not torch.allclose(base, adapted)
    with lora_scaled(lora_model, 0.0):
        assert torch.allclose(lora_model(X), base, atol=1e-6)
    with lora_scaled(lora_model, 1.0):
        assert torch.allclose(lora_model(X), adapted, atol=1e-6)
    assert torch.allclose(lora_model(X), adapted, atol=1e-6)  # scalings restored


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(alpha=st.floats(0.0, 1.0))
@torch.no_grad()
def test_one_lora_layer_interpolates_linearly_in_alpha(lora_model, alpha):
    layer = lora_model.base_model.model[0]  # a single adapted Linear: W0 x + alpha * s * B A x
    x = X
    with lora_scaled(lora_model, 0.0):
        zero_shot = layer(x)
    fine_tuned = layer(x)
    with lora_scaled(lora_model, alpha):
        mixed = layer(x)
    assert torch.allclose(mixed, (1 - alpha) * zero_shot + alpha * fine_tuned, atol=1e-5)


def test_scalings_are_restored_even_when_the_block_raises(lora_model):
    before = [dict(m.scaling) for m in lora_model.modules() if hasattr(m, "scaling")]
    with pytest.raises(RuntimeError), lora_scaled(lora_model, 0.3):
        raise RuntimeError("evaluation failed")
    assert [dict(m.scaling) for m in lora_model.modules() if hasattr(m, "scaling")] == before


def test_val_keeps_its_image_ids_in_order():
    ids = ["val/a/1.JPEG", "val/b/2.JPEG", "val/c/3.JPEG"]
    assert eval_sets("dataset", ids, None, None, ["a", "b", "c"]) == {"val": ("dataset", ids)}
