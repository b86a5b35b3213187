"""prompts.py: template sets, and the ensemble = normalised mean of the single-template class embeddings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clip_lora.loss import class_embeddings
from clip_lora.modeling import load_clip
from clip_lora.prompts import OPENAI_IMAGENET_TEMPLATES, PromptError, resolve_templates
from collator import ClipClassificationCollator

CLASSES = ["tench", "church", "golf ball", "parachute"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}.", "itap of my {}."]


def test_template_sets(tmp_path):
    assert resolve_templates("single", "a sketch of a {}.") == ["a sketch of a {}."]
    paper = resolve_templates("openai_imagenet")
    assert len(paper) == 80 == len(set(paper)) and all(t.count("{}") == 1 for t in paper)
    assert (
        paper[0] == "a bad photo of a {}." and paper[-1] == "a tattoo of the {}." and "itap of a {}." in paper
    )
    assert tuple(paper) == OPENAI_IMAGENET_TEMPLATES
    path = tmp_path / "mine.txt"
    path.write_text("# my templates\n\na photo of a {}.\n  a drawing of a {}.  \n")
    assert resolve_templates(str(path)) == ["a photo of a {}.", "a drawing of a {}."]
    path.write_text("a photo without a slot.\n")
    with pytest.raises(PromptError, match="has no .{}. for the class name"):
        resolve_templates(str(path))
    with pytest.raises(PromptError, match="neither single nor openai_imagenet"):
        resolve_templates(str(tmp_path / "missing.txt"))


@torch.no_grad()
def test_ensemble_is_the_normalised_mean_of_single_template_embeddings(tiny_model_dir):
    model, processor = load_clip(str(tiny_model_dir))
    model.eval()

    def encode(templates):
        collate = ClipClassificationCollator.from_class_names(processor.tokenizer, CLASSES, templates)
        text = model.get_text_features(
            input_ids=collate.prompt_input_ids, attention_mask=collate.prompt_attention_mask
        )
        return text.pooler_output

    ensemble = class_embeddings(encode(TEMPLATES), len(CLASSES))
    singles = torch.stack([F.normalize(encode([t]), dim=-1) for t in TEMPLATES])  # (T, C, D)
    expected = F.normalize(singles.mean(dim=0), dim=-1)
    assert ensemble.shape == (len(CLASSES), expected.shape[-1])
    torch.testing.assert_close(ensemble, expected, atol=1e-5, rtol=1e-5)
    # ...and not simply one of its members: the ensemble moves the class embedding.
    assert (ensemble - F.normalize(singles[0], dim=-1)).abs().max() > 1e-3
