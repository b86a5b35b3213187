"""health: a non-finite gradient or weight stops training with one line naming its step, before anything is logged
or saved, and no finished run is written; the record stays on the device until then (no read-back per step).

Run: python -m pytest tests/test_health.py -q
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch

from clip_lora.errors import TrainingError
from clip_lora.health import TrainingHealth
from clip_lora.testing_utils import make_image_folder
from clip_lora.trainer import ClipLoraTrainer
from testing_utils import WNIDS, make_tiny_trainer, smoke_argv, user_error


def _nan_loss(monkeypatch, from_step: int = 0):
    original = ClipLoraTrainer.compute_loss

    def compute_loss(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        if self.state.global_step >= from_step:
            loss = loss * float("nan") if not isinstance(loss, tuple) else (loss[0] * float("nan"), *loss[1:])
        return loss

    monkeypatch.setattr(ClipLoraTrainer, "compute_loss", compute_loss)


def test_nan_loss_stops_at_its_step(tiny_model_dir, tmp_path, monkeypatch):
    _nan_loss(monkeypatch, from_step=2)
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "out", max_grad_norm=0.0)
    with pytest.raises(TrainingError) as caught:
        trainer.train()
    assert str(caught.value) == (
        "training diverged at step 3: the loss or gradient norm is nan (not finite); lower --learning_rate "
        "(now 0.01), set --max_grad_norm 1.0 (now 0.0)."
    )
    # Recorded on the device at step 3, read when step 3 would have been logged: nothing of it was logged.
    assert [entry["step"] for entry in trainer.state.log_history if "loss" in entry] == [1, 2]


def test_a_divergence_between_logs_is_caught_before_the_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    # Logging every 10 steps: nothing reads the record until the checkpoint of step 3, which is never written.
    _nan_loss(monkeypatch, from_step=1)
    out = tmp_path / "out"
    trainer = make_tiny_trainer(tiny_model_dir, out, logging_steps=10, save_strategy="steps", save_steps=3)
    with pytest.raises(
        TrainingError, match=r"^training diverged at step 2: the loss or gradient norm is nan"
    ):
        trainer.train()
    assert not list(out.glob("checkpoint-*"))


def test_a_divergence_in_the_last_steps_stops_the_run_before_it_ends(tiny_model_dir, tmp_path, monkeypatch):
    _nan_loss(monkeypatch, from_step=2)
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "out", logging_steps=10)
    with pytest.raises(TrainingError, match=r"^training diverged at step 3: "):
        trainer.train()  # no log, no checkpoint: the end of training reads the record


def test_weights_that_overflow_stop_the_run(tiny_model_dir, tmp_path):
    # A finite but absurd learning rate: the first update sends the LoRA weights to inf.
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "out", learning_rate=1e38, max_grad_norm=1.0)
    with pytest.raises(
        TrainingError, match=r"^training diverged at step 1: the LoRA weights became (inf|nan) "
    ):
        trainer.train()


def test_healthy_training_is_untouched(tiny_model_dir, tmp_path):
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "out")
    result = trainer.train()
    assert result.global_step == 3 and 0 < result.training_loss < 100


@pytest.mark.usefixtures("image_check_cache")
def test_a_diverging_run_is_one_error_line_and_not_a_finished_run(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    _nan_loss(monkeypatch)
    data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=4, val_per_class=2, size=8)
    out = tmp_path / "out"
    line = user_error(smoke_argv(tiny_model_dir, data, out, "--max_steps", "2", "--bf16", "true"), capsys)
    assert line == (
        "error: training diverged at step 1: the loss or gradient norm is nan (not finite); lower "
        "--learning_rate (now 0.005), lower --max_grad_norm or train in fp32 (drop --fp16/--bf16)."
    )
    assert not (out / "all_results.json").exists() and not (out / "adapter_model.safetensors").exists()


def _health_after(steps) -> TrainingHealth:
    """A TrainingHealth fed step by step as the lean step feeds it: (gradient norm, weight to write or None) per
    step; the gradient norm is recorded before the optimizer step, the weights after it, both under the step's
    number."""
    model = torch.nn.Linear(2, 2)
    health = TrainingHealth()
    health.on_train_begin(None, None, None, model=model)
    for step, (norm, weight) in enumerate(steps, start=1):
        health.record_gradient_norm(step, torch.tensor(norm))
        if weight is not None:
            with torch.no_grad():
                model.weight[0, 0] = weight
        health.on_optimizer_step(None, SimpleNamespace(global_step=step - 1), None)
    return health


ARGS = SimpleNamespace(fp16=False, bf16=False, max_grad_norm=1.0, learning_rate=1e-4)
INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        # The weights overflow at step 12, and so the gradients at step 13: the weights at 12 are the cause.
        ([(1.0, None)] * 11 + [(1.0, INF), (NAN, None)], "at step 12: the LoRA weights became inf after the"),
        # An inf gradient (not only NaN) at step 3; a NaN one follows.
        (
            [(1.0, None), (2.0, None), (INF, None), (NAN, None)],
            "at step 3: the loss or gradient norm is inf (not",
        ),
        # A NaN loss at step 2 makes that step's weights NaN too: the gradients, recorded first, are the cause.
        ([(1.0, None), (NAN, NAN)], "at step 2: the loss or gradient norm is nan (not finite)"),
    ],
    ids=["weights before gradients", "inf gradient", "same step"],
)
def test_the_first_non_finite_record_is_named_with_its_step(steps, message):
    with pytest.raises(TrainingError, match=f"^training diverged {re.escape(message)}"):
        _health_after(steps).check(ARGS)
