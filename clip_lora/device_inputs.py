"""Batches onto the device without making the host wait for it.

    to_device = DeviceInputs(device, text_config, normalize=collator.normalize)
    inputs = to_device(batch)        # what ClipLoraTrainer._prepare_inputs does

On a GPU the host queues kernels ahead of the device; anything that reads a device value back, or copies from
pageable memory, stalls that queue. For the batches of this project:
- images and labels move with `non_blocking=True` (from the loader's pinned memory the copy overlaps compute);
- uint8 pixels (`--preprocessing cached`) travel as uint8, 4x fewer bytes, and are rescaled and normalised on the
  device by the collator's own arithmetic (`ClipClassificationCollator.normalize`);
- the class prompts are the same C*T rows in every batch: they go to the device once per prompt set, with the text
  tower's attention mask prepared once as the 4D causal + padding mask the text tower would otherwise rebuild at
  every step, reading the padding back from the device to decide whether SDPA may skip it.
"""

from __future__ import annotations

import inspect
import logging

import torch

logger = logging.getLogger(__name__)


def prepared_text_mask(text_config, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor):
    """The text tower's 4D causal + padding mask, built once by the helper the tower itself calls, or the 2D mask
    unchanged when that helper cannot be called as checked (the tower then builds the same 4D mask at every step:
    the same numbers, a little more host work).

    `transformers.masking_utils.create_causal_mask` is internal (docs/library_internals.md): its fourth parameter
    was `past_key_values` in 5.17 and is `cache` in 5.25, so it is passed positionally, once the signature is known
    to take the first three by these names and a fourth, all by position.
    """
    try:
        from transformers.masking_utils import create_causal_mask

        signature = inspect.signature(create_causal_mask)
        signature.bind(text_config, inputs_embeds, attention_mask, None)
        checked = list(signature.parameters)[:3] == ["config", "inputs_embeds", "attention_mask"]
    except (ImportError, TypeError, ValueError):  # gone, another signature, or a wrapper without one
        checked = False
    if not checked:
        logger.info(
            "transformers' create_causal_mask is not the one checked: the text tower builds its own mask"
        )
        return attention_mask
    return create_causal_mask(text_config, inputs_embeds, attention_mask, None)


class DeviceInputs:
    def __init__(self, device: torch.device, text_config, normalize=None):
        self.device, self.text_config, self.normalize = device, text_config, normalize
        self._prompts: dict[bytes, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def prompts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(input ids, the text tower's attention mask: 4D, or None when no prompt is padded) on the device."""
        key = input_ids.cpu().numpy().tobytes() + attention_mask.cpu().numpy().tobytes()
        if key not in self._prompts:
            ids = input_ids.to(self.device)
            mask = attention_mask.to(self.device)
            embeds = torch.empty((*ids.shape, self.text_config.hidden_size), device=self.device)
            text_mask = prepared_text_mask(self.text_config, embeds, mask)
            self._prompts[key] = (ids, text_mask)
        return self._prompts[key]

    def __call__(self, inputs: dict) -> dict:
        out = {
            key: value.to(self.device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in inputs.items()
            if key not in ("input_ids", "attention_mask")
        }
        if "input_ids" in inputs and inputs["input_ids"].device.type == "cpu":
            out["input_ids"], out["attention_mask"] = self.prompts(
                inputs["input_ids"], inputs["attention_mask"]
            )
        elif "input_ids" in inputs:  # already moved (an accelerate evaluation loader): prompts as they are
            out["input_ids"], out["attention_mask"] = inputs["input_ids"], inputs["attention_mask"]
        if self.normalize is not None and "pixel_values" in out:
            out["pixel_values"] = self.normalize(out["pixel_values"])
        return out


def nonempty_pixels(pixel_values: torch.Tensor, vision_config) -> tuple[torch.Tensor, int]:
    """(pixels to run through the vision tower, number of real rows). An empty batch (this process's share of a
    short last step, or a training batch whose every image became unreadable) becomes one blank image, whose
    embedding the caller slices away: the tower still runs, so every weight gets a (zero) gradient, which DDP waits
    for. Rows without a size (placeholders of unreadable images, before any readable image gave the collator its
    layout) become blank images of the model's size, one per row. Decided from shapes only: no device read."""
    rows = pixel_values.shape[0]
    if rows and pixel_values.shape[-1] and pixel_values.shape[-2]:
        return pixel_values, rows
    size = vision_config.image_size
    blank = torch.zeros(max(rows, 1), vision_config.num_channels, size, size, device=pixel_values.device)
    return blank, rows
