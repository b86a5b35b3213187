"""The class-prompt loss: CLIP as a classifier against its own prompts, one home for the math.

    logits = class_logits(image_embeds, class_embeddings(text_embeds, num_classes), capped_logit_scale(clip))
    loss, logits = clip_class_loss(image_embeds, class_embeds, labels, logit_scale, "contrastive")

Used by training and evaluation (clip_lora/trainer.py), prediction and export; no host-device sync anywhere in it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = 100.0  # CLIP clamps its learned temperature here; we never score with a sharper one.


def class_embeddings(text_embeds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C*T, D) prompt embeddings, class-major -> (C, D): normalised mean over templates (the CLIP paper's ensemble)."""
    per_class = F.normalize(text_embeds.float(), dim=-1).view(num_classes, -1, text_embeds.shape[-1])
    return F.normalize(per_class.mean(dim=1), dim=-1)


def capped_logit_scale(clip_model_or_logit_scale) -> torch.Tensor:
    """CLIP's learned temperature exp(logit_scale), never above MAX_LOGIT_SCALE (from the model or the parameter)."""
    logit_scale = getattr(clip_model_or_logit_scale, "logit_scale", clip_model_or_logit_scale)
    return logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


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
    if labels.numel() == 0:  # every image of the step became unreadable: nothing to learn, graph kept for DDP
        return logits.sum() * 0, logits
    image_to_text = F.cross_entropy(logits, labels)
    if kind == "ce":
        return image_to_text, logits
    # Every class row at once, absent ones masked out of the mean: the classes present are never read back to the
    # host (labels.unique() would wait for the device at every step).
    classes = torch.arange(logits.shape[1], device=labels.device)
    positives = labels[None, :] == classes[:, None]  # (C, B)
    present = positives.any(dim=1)
    log_probs = logits.T.log_softmax(dim=1)  # (C, B): each class over the batch's images
    # An absent class's row is all -inf: keep it finite (it is masked out) so that no NaN reaches the gradient.
    positive_log_probs = log_probs.masked_fill(~positives, -math.inf).masked_fill(~present[:, None], 0.0)
    per_class = -positive_log_probs.logsumexp(dim=1)
    text_to_image = (per_class * present).sum() / present.sum()
    return (image_to_text + text_to_image) / 2, logits
