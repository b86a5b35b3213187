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

from dataclasses import dataclass

import torch


@dataclass
class ClipClassificationCollator:
    """Stacks `pixel_values` and `labels`; attaches the tokenized class prompts (C*T rows) once per batch.

    The prompts are tokenized once, when the collator is built, and the same tensors are attached to every batch, so
    the trainer can encode them with the (LoRA-adapted) text tower inside the step. With T templates per class, rows
    are ordered class-major: row c*T + t is template t of class c.
    """

    prompt_input_ids: torch.Tensor
    prompt_attention_mask: torch.Tensor

    @classmethod
    def from_class_names(cls, tokenizer, class_names: list[str], templates: list[str]) -> ClipClassificationCollator:
        prompts = [template.format(name) for name in class_names for template in templates]
        tokens = tokenizer(prompts, padding=True, return_tensors="pt")
        return cls(prompt_input_ids=tokens["input_ids"], prompt_attention_mask=tokens["attention_mask"])

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        pixel_values = torch.stack([torch.as_tensor(f["pixel_values"]) for f in features])
        labels = torch.tensor([int(f["labels"]) for f in features], dtype=torch.long)
        return {
            "pixel_values": pixel_values,
            "labels": labels,
            "input_ids": self.prompt_input_ids,
            "attention_mask": self.prompt_attention_mask,
        }
