"""prompts: the single-template report swaps only the prompts, for one predict, and puts the ensemble back."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from clip_lora.prompts import PromptError, resolve_templates, single_template_metrics
from collator import ClipClassificationCollator


def fake_tokenizer(prompts, padding=False, return_tensors=None):
    ids = torch.tensor([[len(p), sum(map(ord, p))] for p in prompts])  # one row per prompt, recognisable
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class RecordingTrainer:
    def __init__(self, collator):
        self.data_collator = collator
        self.seen = []

    def predict(self, dataset, metric_key_prefix):
        self.seen.append(self.data_collator)
        metrics = {f"{metric_key_prefix}_accuracy": 0.5, f"{metric_key_prefix}_runtime": 1.0}
        return SimpleNamespace(metrics=metrics)


def test_single_template_metrics_use_that_template_then_restore_the_ensemble():
    ensemble = ClipClassificationCollator.from_class_names(
        fake_tokenizer,
        ["tench", "church"],
        ["a {}.", "itap of my {}."],
        image_mean=[0.5] * 3,
        image_std=[0.2] * 3,
    )
    trainer = RecordingTrainer(ensemble)
    metrics = single_template_metrics(
        trainer, None, fake_tokenizer, ["tench", "church"], "a photo of a {}.", "s"
    )
    assert metrics == {"s_accuracy": 0.5}
    used = trainer.seen[0]
    expected = fake_tokenizer(["a photo of a tench.", "a photo of a church."], True, "pt")["input_ids"]
    assert torch.equal(used.prompt_input_ids, expected)
    assert used.image_mean == [0.5] * 3  # the cached-pixel normalisation stays
    assert trainer.data_collator is ensemble


def test_a_template_with_two_slots_is_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a {} next to a {}.\n")
    with pytest.raises(PromptError, match="exactly once"):
        resolve_templates(str(path))
