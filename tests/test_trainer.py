"""trainer: the class-prompt loss, what training touches, and evaluation encoding the prompts once per pass."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clip_lora.loss import MAX_LOGIT_SCALE, class_embeddings, clip_class_loss
from testing_utils import make_tiny_trainer


def test_same_class_images_are_not_negatives():
    classes = torch.eye(3)
    labels = torch.tensor([0, 0, 1, 2])
    images = classes[labels]  # both class-0 images sit exactly on their class prompt
    loss, logits = clip_class_loss(images, classes, labels, torch.tensor(100.0), "contrastive")
    assert logits.shape == (4, 3)
    assert loss.item() < 1e-3
    # A per-image CLIP loss would make image 1 a negative of image 0's prompt and cost log 2 for the duplicate.
    per_image_t2i = F.cross_entropy(100.0 * classes[labels] @ images.T, torch.arange(4))
    assert per_image_t2i.item() > math.log(2) / 4
    # Moving probability between same-class images leaves the loss unchanged: they are never pushed apart.
    tilted = images.clone()
    tilted[1] = F.normalize(torch.tensor([1.0, 0.3, 0.0]), dim=0)
    loss_a, _ = clip_class_loss(tilted, classes, labels, torch.tensor(1.0), "contrastive")
    swapped = tilted[[1, 0, 2, 3]]
    loss_b, _ = clip_class_loss(swapped, classes, labels, torch.tensor(1.0), "contrastive")
    assert torch.allclose(loss_a, loss_b)


def test_ce_loss_is_cross_entropy_over_all_classes():
    torch.manual_seed(0)
    images, classes = torch.randn(5, 8), F.normalize(torch.randn(3, 8), dim=-1)
    labels = torch.tensor([0, 1, 2, 2, 1])
    loss, logits = clip_class_loss(images, classes, labels, torch.tensor(10.0), "ce")
    assert torch.allclose(loss, F.cross_entropy(10.0 * F.normalize(images, dim=-1) @ classes.T, labels))


def test_class_embeddings_are_normalised_template_means():
    torch.manual_seed(0)
    text = torch.randn(6, 4)  # 2 classes x 3 templates, class-major
    expected = F.normalize(F.normalize(text, dim=-1).view(2, 3, 4).mean(1), dim=-1)
    assert torch.allclose(class_embeddings(text, 2), expected)


@pytest.fixture()
def tiny_trainer(tiny_model_dir, tmp_path):
    return make_tiny_trainer(tiny_model_dir, tmp_path)


def test_training_moves_every_lora_tensor_in_both_towers_and_nothing_else(tiny_trainer):
    model = tiny_trainer.model
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    tiny_trainer.train()
    lora = [name for name in before if "lora_" in name]
    assert any("vision_model" in n for n in lora) and any("text_model" in n for n in lora)
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        assert changed == ("lora_" in name), f"{name} changed={changed}"


def test_logit_scale_is_capped(tiny_trainer):
    with torch.no_grad():
        tiny_trainer.model.base_model.model.logit_scale.fill_(math.log(1000.0))
    assert tiny_trainer.logit_scale(tiny_trainer.model).item() == pytest.approx(MAX_LOGIT_SCALE)


def test_evaluation_encodes_class_prompts_once_per_pass(tiny_trainer):
    calls = []
    text_model = tiny_trainer.model.base_model.model.text_model
    handle = text_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        metrics = tiny_trainer.evaluate()  # 24 images / batch 8 = 3 batches
        assert len(calls) == 1
        tiny_trainer.predict(tiny_trainer.eval_dataset)
        assert len(calls) == 2
    finally:
        handle.remove()
    assert tiny_trainer.text_encoder_calls == 2
    assert {"eval_accuracy", "eval_macro_f1", "eval_loss"} <= set(metrics)


@pytest.mark.parametrize("loss_kind", ["contrastive", "ce"])
def test_eval_loss_does_not_depend_on_the_batch_size(tiny_model_dir, tmp_path, loss_kind):
    losses = {}
    for batch in (4, 32):
        trainer = make_tiny_trainer(tiny_model_dir, tmp_path / str(batch), per_device_eval_batch_size=batch)
        trainer.loss_kind = loss_kind
        losses[batch] = trainer.evaluate()["eval_loss"]
    # The image->text cross-entropy, a per-image quantity: 6 batches of 4 and one of 24 give the same mean.
    assert losses[4] == pytest.approx(losses[32], abs=1e-6)
    predictions = trainer.predict(trainer.eval_dataset)
    logits, labels = torch.from_numpy(predictions.predictions), torch.from_numpy(predictions.label_ids)
    assert losses[32] == pytest.approx(F.cross_entropy(logits, labels).item(), abs=1e-5)


def _accumulated_run(tiny_model_dir, out, per_device: int, accumulation: int):
    import transformers

    transformers.set_seed(0)
    trainer = make_tiny_trainer(
        tiny_model_dir, out, per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    adapter = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    return losses, adapter


def test_accumulation_trains_the_same_whether_or_not_trainer_divides_the_loss_itself(
    tiny_model_dir, tmp_path, monkeypatch
):
    """compute_loss returns each micro-batch's share of the step's loss. transformers 5.25 is told so
    (`loss_is_scaled_for_ga`); 5.17 (the floor, the GPU machine's) has no such attribute and divides the result by
    the number of micro-batches, so compute_loss multiplies first (TRAINER_DIVIDES_BY_MICRO_BATCHES). Both
    conventions train what one batch of 8 trains: 4 x 2 under the installed one, and, where the installed Trainer
    can be made to divide (5.25), under the other one too. Before the fix, 5.17 logged twice the loss."""
    from transformers import Trainer

    from clip_lora import trainer as trainer_module

    whole = _accumulated_run(tiny_model_dir, tmp_path / "8x1", 8, 1)
    installed = _accumulated_run(tiny_model_dir, tmp_path / "4x2", 4, 2)
    runs = [installed]
    if hasattr(
        Trainer, "loss_is_scaled_for_ga"
    ):  # simulate the older Trainer: it divides, compute_loss multiplies
        monkeypatch.setattr(trainer_module.ClipLoraTrainer, "loss_is_scaled_for_ga", False)
        monkeypatch.setattr(trainer_module, "TRAINER_DIVIDES_BY_MICRO_BATCHES", True)
        runs.append(_accumulated_run(tiny_model_dir, tmp_path / "4x2-divided", 4, 2))
    for losses, adapter in runs:
        assert losses == pytest.approx(whole[0], rel=1e-5)
        for name, weight in whole[1].items():
            torch.testing.assert_close(adapter[name], weight, rtol=1e-4, atol=1e-6, msg=name)
    if len(runs) == 2:
        assert runs[1][0] == pytest.approx(runs[0][0], rel=1e-6)
