"""Batch collation for CLIP classification: images and labels, plus the class prompts every batch is scored against.

Example (runs as a doctest: `python -m doctest collator.py -v` or `make test`):

    >>> import torch
    >>> from collator import ClipClassificationCollator
    >>> prompts = {"input_ids": torch.tensor([[1, 5, 2], [1, 6, 2]]), "attention_mask": torch.ones(2, 3, dtype=torch.long)}
    >>> collate = ClipClassificationCollator(prompt_input_ids=prompts["input_ids"],
    ...                                      prompt_attention_mask=prompts["attention_mask"])
    >>> batch = collate([{"pixel_values": torch.zeros(3, 4, 4), "labels": 1},
    ...                  {"pixel_values": torch.ones(3, 4, 4), "labels": 0}])
    >>> batch["pixel_values"].shape, batch["labels"].tolist(), batch["input_ids"].shape
    (torch.Size([2, 3, 4, 4]), [1, 0], torch.Size([2, 3]))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from clip_lora.placeholders import IGNORE_INDEX


@dataclass
class ClipClassificationCollator:
    """Stacks `pixel_values` and `labels`; attaches the tokenized class prompts (C*T rows) once per batch.

    The prompts are tokenized once, when the collator is built, and the same tensors are attached to every batch, so
    the trainer can encode them with the (LoRA-adapted) text tower inside the step. With T templates per class, rows
    are ordered class-major: row c*T + t is template t of class c.
    """

    prompt_input_ids: torch.Tensor
    prompt_attention_mask: torch.Tensor
    # uint8 pixels (`--preprocessing cached`) are rescaled and normalised here; float pixels pass through unchanged.
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    rescale_factor: float = 1 / 255
    # True: uint8 pixels leave as uint8 (4x fewer bytes to copy) and the consumer calls `normalize` on the device
    # (ClipLoraTrainer does on a GPU); the arithmetic is the same float32 operations either way.
    defer_normalization: bool = False
    _pixel_shape: tuple = (3, 0, 0)  # of the last image seen: an all-placeholder batch keeps the same layout
    _pixel_dtype: np.dtype = np.dtype(np.float32)
    _on_device: dict = field(
        default_factory=dict, repr=False, compare=False
    )  # normalize's mean/std per device

    @classmethod
    def from_class_names(
        cls,
        tokenizer,
        class_names: list[str],
        templates: list[str],
        max_length: int | None = None,
        **normalization,
    ) -> ClipClassificationCollator:
        # Through the class-name layer: names the model cannot tell apart, or prompts longer than the text tower
        # takes (max_length, from the model config), are one error line, never a silent or crashing tokenization.
        from clip_lora.class_names import prompt_tokens

        tokens = prompt_tokens(tokenizer, class_names, templates, max_length)
        return cls(
            prompt_input_ids=tokens["input_ids"],
            prompt_attention_mask=tokens["attention_mask"],
            **normalization,
        )

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        # numpy, single-threaded: torch's intra-op pool is the model's, and under load its stack/cast stall (bench/).
        # A row without pixels is an image that became unreadable after the pre-training check (images.py logged
        # and listed it): it stays as a blank placeholder labelled IGNORE_INDEX, so a batch always has one row per
        # dataset row; the loss and the metrics leave it out (clip_lora/placeholders.py).
        real = [f["pixel_values"] for f in features if f["pixel_values"] is not None]
        if real:
            first = np.asarray(real[0])
            self._pixel_shape, self._pixel_dtype = first.shape, first.dtype
        pixels = np.zeros((len(features), *self._pixel_shape), dtype=self._pixel_dtype)
        for row, feature in enumerate(features):
            if feature["pixel_values"] is not None:
                pixels[row] = np.asarray(feature["pixel_values"])
        if pixels.dtype == np.uint8:
            self._check_normalization()
            if not self.defer_normalization:
                pixels = pixels.astype(np.float32)
                # In place: stays float32, as the image processor computes.
                pixels *= np.float32(self.rescale_factor)
                pixels -= np.asarray(self.image_mean, dtype=np.float32).reshape(-1, 1, 1)
                pixels /= np.asarray(self.image_std, dtype=np.float32).reshape(-1, 1, 1)
        elif pixels.dtype == np.float64:  # plain Python lists: float32, as torch.as_tensor would give
            pixels = pixels.astype(np.float32)
        labels = torch.tensor(
            [int(f["labels"]) if f["pixel_values"] is not None else IGNORE_INDEX for f in features],
            dtype=torch.long,
        )
        return {
            "pixel_values": torch.from_numpy(pixels),
            "labels": labels,
            "input_ids": self.prompt_input_ids,
            "attention_mask": self.prompt_attention_mask,
        }

    def _check_normalization(self) -> None:
        if self.image_mean is None or self.image_std is None:
            raise ValueError(
                "uint8 pixel_values (--preprocessing cached) need the collator's image_mean/image_std; "
                "build it with from_class_names(..., **preprocessing.normalization(image_processor))."
            )

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (any device) -> float32, rescaled and normalised: the float32 operations of `__call__`, in
        the same order, so the values are the same bit for bit. Float pixels are returned as they are."""
        if pixels.dtype != torch.uint8:
            return pixels
        self._check_normalization()
        if pixels.device not in self._on_device:  # mean and std copied to each device once
            self._on_device[pixels.device] = tuple(
                torch.tensor(values, dtype=torch.float32).view(-1, 1, 1).to(pixels.device)
                for values in (self.image_mean, self.image_std)
            )
        mean, std = self._on_device[pixels.device]
        return (pixels.to(torch.float32) * np.float32(self.rescale_factor).item() - mean) / std
