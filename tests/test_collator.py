"""collator: stacking, labels, and the class prompts attached once per batch (class-major with templates)."""

from __future__ import annotations

import doctest

import torch
from transformers import CLIPTokenizer

import collator
from collator import ClipClassificationCollator


def test_docstring_example_runs():
    assert doctest.testmod(collator).failed == 0


def test_prompts_are_class_major_and_shared_by_every_batch(tiny_model_dir):
    tokenizer = CLIPTokenizer.from_pretrained(tiny_model_dir)
    collate = ClipClassificationCollator.from_class_names(
        tokenizer, ["tench", "church"], ["a {}.", "a photo of a {}."]
    )
    decoded = tokenizer.batch_decode(collate.prompt_input_ids, skip_special_tokens=True)
    assert [text.replace(" ", "") for text in decoded] == [
        "atench.",
        "aphotoofatench.",
        "achurch.",
        "aphotoofachurch.",
    ]
    features = [{"pixel_values": torch.full((3, 8, 8), float(i)), "labels": i % 2} for i in range(5)]
    first, second = collate(features[:3]), collate(features[3:])
    assert first["pixel_values"].shape == (3, 3, 8, 8) and first["labels"].tolist() == [0, 1, 0]
    assert torch.equal(first["pixel_values"][2], features[2]["pixel_values"])
    assert first["input_ids"] is second["input_ids"]  # tokenized once, attached to every batch
    assert first["attention_mask"].shape == first["input_ids"].shape == (4, collate.prompt_input_ids.shape[1])
