"""Numerics: the logit scale never exceeds 100; a bf16-autocast training step on CPU gives a finite loss and finite
LoRA gradients, and the LoRA master weights (and their gradients and optimizer state) stay fp32.

Run: python -m pytest tests/test_numerics.py -q
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerCallback

from clip_lora.loss import MAX_LOGIT_SCALE
from testing_utils import make_tiny_trainer


def make_trainer(tiny_model_dir, tmp_path, **overrides):
    return make_tiny_trainer(
        tiny_model_dir, tmp_path, num_images=8, **{"max_steps": 1, "learning_rate": 1e-3, **overrides}
    )


def test_logits_never_sharper_than_100_even_if_the_temperature_drifts(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path)
    clip = trainer.model.base_model.model
    assert not clip.logit_scale.requires_grad  # frozen: LoRA training cannot move it
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(1e4))  # a checkpoint with an absurd temperature
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    loss, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    assert outputs["logits"].abs().max().item() <= MAX_LOGIT_SCALE + 1e-4
    assert trainer.logit_scale(trainer.model).item() == pytest.approx(MAX_LOGIT_SCALE)
    assert torch.isfinite(loss)


class Probe(TrainerCallback):
    """Records, just before the optimizer step, the LoRA parameters' dtypes and gradients."""

    def __init__(self):
        self.params = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.params = {
            n: (p.dtype, p.grad.detach().clone()) for n, p in model.named_parameters() if p.requires_grad
        }


def test_bf16_autocast_step_on_cpu_is_finite_and_keeps_fp32_master_weights(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, bf16=True)
    probe = Probe()
    trainer.add_callback(probe)
    activations = []
    q_proj = trainer.model.base_model.model.vision_model.encoder.layers[0].self_attn.q_proj
    handle = q_proj.register_forward_hook(lambda module, args, out: activations.append(out.dtype))
    try:
        result = trainer.train()
    finally:
        handle.remove()
    assert activations and set(activations) == {torch.bfloat16}  # autocast really ran the matmuls in bf16
    assert math.isfinite(result.training_loss)
    assert probe.params and all("lora_" in name for name in probe.params)
    for name, (dtype, grad) in probe.params.items():
        assert dtype == torch.float32 and grad.dtype == torch.float32, name
        assert torch.isfinite(grad).all(), name
    assert any(grad.abs().sum() > 0 for _, grad in probe.params.values())
    # After the step too, and the optimizer state with them. (The frozen matmul weights are stored in bf16, what
    # autocast casts them to anyway: tests/test_lean_step.py.)
    for name, p in trainer.model.named_parameters():
        assert p.dtype == torch.float32 or not p.requires_grad, name
    states = [s for s in trainer.optimizer.state.values() if "exp_avg" in s]
    assert states and all(s["exp_avg"].dtype == torch.float32 for s in states)


def test_evaluation_runs_under_the_training_autocast(tiny_model_dir, tmp_path):
    # get_text_features / get_image_features bypass the autocast accelerate wraps around forward: evaluation (dev,
    # zero-shot, WiSE-FT all go through trainer.predict) must run in the training's precision, not fp32.
    trainer = make_trainer(tiny_model_dir, tmp_path, bf16=True)
    clip = trainer.model.base_model.model
    seen = {}
    handles = [
        tower.encoder.layers[0].self_attn.q_proj.register_forward_hook(
            lambda module, args, out, name=name: seen.setdefault(name, set()).add(out.dtype)
        )
        for name, tower in (("vision", clip.vision_model), ("text", clip.text_model))
    ]
    try:
        metrics = trainer.evaluate()
    finally:
        for handle in handles:
            handle.remove()
    assert seen == {"vision": {torch.bfloat16}, "text": {torch.bfloat16}}
    assert math.isfinite(metrics["eval_loss"])
