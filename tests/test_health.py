"""health: a non-finite gradient or weight stops training at that step with one line, and no finished run is written.

Run: python -m pytest tests/test_health.py -q
"""

from __future__ import annotations

import pytest

from clip_lora.errors import TrainingError
from clip_lora.health import TrainingHealthCallback
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
    trainer.add_callback(TrainingHealthCallback())
    with pytest.raises(TrainingError) as caught:
        trainer.train()
    assert str(caught.value) == (
        "training diverged at step 3: the loss or gradient norm is nan (not finite); lower --learning_rate "
        "(now 0.01), set --max_grad_norm 1.0 (now 0.0)."
    )
    assert trainer.state.global_step == 2  # steps 1 and 2 ran; step 3 never reached the optimizer


def test_weights_that_overflow_stop_the_run(tiny_model_dir, tmp_path):
    # A finite but absurd learning rate: the first update sends the LoRA weights to inf.
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "out", learning_rate=1e38, max_grad_norm=1.0)
    trainer.add_callback(TrainingHealthCallback())
    with pytest.raises(
        TrainingError, match=r"^training diverged at step 1: the LoRA weights became (inf|nan) "
    ):
        trainer.train()


def test_healthy_training_is_untouched(tiny_model_dir, tmp_path):
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "out")
    trainer.add_callback(TrainingHealthCallback())
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
