"""A Trainer that fine-tunes CLIP as a classifier against its own class prompts.

    trainer = ClipLoraTrainer(model=peft_model, args=training_args, data_collator=collator, num_classes=10, ...)

Training: every step encodes the batch's images and the C*T class prompts (the text tower is adapted too, so its
features change with every step) and scores each image against each class. Evaluation: the class prompts are encoded
once per evaluation pass and reused for every batch; `prediction_step` returns logits over classes, so Trainer's
`compute_metrics`, `predict` and best-model selection work unchanged.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from clip_lora.run_dir import (
    CHECKPOINT_COMPLETE as CHECKPOINT_COMPLETE,  # re-exported: checkpoints live in run_dir
)
from clip_lora.run_dir import last_complete_checkpoint as last_complete_checkpoint
from clip_lora.run_dir import write_checkpoint_marker

logger = logging.getLogger(__name__)

MAX_LOGIT_SCALE = 100.0  # CLIP clamps its learned temperature here; we never score with a sharper one.


def class_embeddings(text_embeds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C*T, D) prompt embeddings, class-major -> (C, D): normalised mean over templates (the CLIP paper's ensemble)."""
    per_class = F.normalize(text_embeds.float(), dim=-1).view(num_classes, -1, text_embeds.shape[-1])
    return F.normalize(per_class.mean(dim=1), dim=-1)


def capped_logit_scale(clip_model) -> torch.Tensor:
    """CLIP's learned temperature exp(logit_scale), never above MAX_LOGIT_SCALE."""
    return clip_model.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


def class_logits(
    image_embeds: torch.Tensor, class_embeds: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """(B, C) scaled cosine similarities of image embeddings (normalised here) and normalised class embeddings."""
    return logit_scale * F.normalize(image_embeds.float(), dim=-1) @ class_embeds.float().T


def clip_class_loss(
    image_embeds: torch.Tensor,
    class_embeds: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    kind: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and (B, C) logits of normalised image embeddings against normalised class embeddings.

    `ce`: cross-entropy of each image over all C class prompts.
    `contrastive`: the mean of that image->text term and a text->image term in which each class present in the batch
    must pick out its images among the batch's. All images of that class are positives at once
    (-log of their summed probability), so same-class images are never negatives of each other.
    """
    logits = class_logits(image_embeds, class_embeds, logit_scale)
    image_to_text = F.cross_entropy(logits, labels)
    if kind == "ce":
        return image_to_text, logits
    present = labels.unique()
    log_probs = logits[:, present].T.log_softmax(dim=1)  # (P, B): each present class over the batch's images
    positives = labels[None, :] == present[:, None]
    text_to_image = -log_probs.masked_fill(~positives, -math.inf).logsumexp(dim=1).mean()
    return (image_to_text + text_to_image) / 2, logits


class ClipLoraTrainer(Trainer):
    """Trainer subclass: CLIP class-prompt loss in `compute_loss`, class logits in `prediction_step`."""

    def __init__(self, *args, num_classes: int, loss_kind: str = "contrastive", **kwargs):
        super().__init__(*args, **kwargs)
        self.num_classes = num_classes
        self.loss_kind = loss_kind
        self._eval_class_embeds: torch.Tensor | None = None
        self.text_encoder_calls = 0  # how often the class prompts went through the text tower in evaluation

    def _save_checkpoint(self, model, trial):
        # Trainer writes checkpoint-N file by file. A checkpoint counts only once its .complete marker exists (made
        # by rename after every file is written), and older ones are rotated out only after that, so a kill at
        # any moment leaves the previous complete checkpoint in place for resuming.
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every process has written its RNG state into the checkpoint
        if self.args.should_save:
            run_dir = self._get_output_dir(trial=trial)
            folder = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            write_checkpoint_marker(folder, self.state.global_step)
            rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint, use_mtime=True)

    def training_step(self, model, inputs, *args, **kwargs):
        # Every image of this batch became unreadable after the pre-training check (the collator dropped them):
        # nothing to learn from, and a mean over zero images would be NaN.
        if inputs["labels"].numel() == 0:
            return torch.zeros((), device=self.args.device)
        return super().training_step(model, inputs, *args, **kwargs)

    def logit_scale(self, model) -> torch.Tensor:
        return capped_logit_scale(self.accelerator.unwrap_model(model))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # One forward through the (possibly DDP-wrapped) model, so gradient sync sees every adapted weight.
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=inputs["pixel_values"],
        )
        class_embeds = class_embeddings(outputs.text_embeds, self.num_classes)
        loss, logits = clip_class_loss(
            outputs.image_embeds, class_embeds, inputs["labels"], self.logit_scale(model), self.loss_kind
        )
        return (loss, {"logits": logits}) if return_outputs else loss

    def evaluation_loop(self, *args, **kwargs):
        # The prompts are encoded once per pass: the adapter may have changed since the last one.
        self._eval_class_embeds = None
        try:
            return super().evaluation_loop(*args, **kwargs)
        finally:
            self._eval_class_embeds = None

    @torch.no_grad()
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        clip = self.accelerator.unwrap_model(model)
        with self.compute_loss_context_manager():
            if self._eval_class_embeds is None:
                text = clip.get_text_features(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
                )
                self._eval_class_embeds = class_embeddings(text.pooler_output, self.num_classes)
                self.text_encoder_calls += 1
            image = clip.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
            loss, logits = clip_class_loss(
                image, self._eval_class_embeds, inputs["labels"], self.logit_scale(model), self.loss_kind
            )
        return loss.detach(), (None if prediction_loss_only else logits.detach()), inputs["labels"]
