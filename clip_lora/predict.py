"""Classify your own images with a fine-tuned adapter, or zero-shot with the base model alone.

    clip-lora-predict --adapter_name_or_path runs/demo photos/ cat.jpg          # top-5 table on the console
    clip-lora-predict --adapter_name_or_path me/clip-lora photos/ --output preds.csv   # or preds.json
    clip-lora-predict --model_name_or_path openai/clip-vit-base-patch16 --labels "cat,dog,car" photos/
    python -m clip_lora predict ...                                           # the same, without installing

Folders are searched recursively for image files; files that cannot be read are reported on stderr and skipped.
Class names and prompt templates come from the adapter's model card (written by every training run); `--labels`
replaces the class names. Scoring is the evaluation's: `trainer.class_embeddings` over the class prompts, cosine
similarity times CLIP's (capped) logit scale, softmax over the classes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

from clip_lora import progress
from clip_lora.adapters import base_model_for
from clip_lora.artifacts import TEMPERATURE
from clip_lora.calibration import read_temperature
from clip_lora.class_names import normalise, prompt_tokens, text_limit
from clip_lora.errors import PredictError  # noqa: F401 - re-exported: raised here, caught in cli
from clip_lora.export import read_class_prompts
from clip_lora.loss import capped_logit_scale, class_embeddings, class_logits
from clip_lora.model_card import label_info
from clip_lora.modeling import load_adapter, load_clip
from clip_lora.predict_output import (  # noqa: F401 - re-exported: the helpers predict has always offered
    find_images,
    format_table,
    read_image,
    read_images,
    report,
    top_k,
    write_output,
)
from clip_lora.prompts import DEFAULT_TEMPLATE, template_problem
from clip_lora.verb_args import SEED_MODEL, label_list, predict_args
from collator import ClipClassificationCollator


def load_classifier(
    model_name_or_path: str | None,
    adapter_name_or_path: str | None,
    labels: str | None,
    prompt_template: str | None,
    device: str,
):
    """(model, processor, class names, prompt templates), resolving defaults from the adapter and its card."""
    if adapter_name_or_path:
        info = label_info(adapter_name_or_path)
    else:  # a merged export (clip-lora export) carries its classes and prompts
        info = (
            read_class_prompts(model_name_or_path)
            if model_name_or_path and Path(model_name_or_path).is_dir()
            else None
        )
    if labels:
        class_names = label_list(labels)
    elif info:  # through the same class-name layer as --labels and training
        where = adapter_name_or_path or model_name_or_path
        class_names = normalise(info[0], where=f"the class names of {where}")
    else:
        where = (
            f"{adapter_name_or_path} has no model card with class_names"
            if adapter_name_or_path
            else "zero-shot"
        )
        raise PredictError(f'{where}: pass the class names, e.g. --labels "cat,dog,car".')
    templates = [prompt_template] if prompt_template else (info[1] if info else [DEFAULT_TEMPLATE])
    bad = [t for t in templates if template_problem(t)]
    if bad:
        raise PredictError(f"prompt template {bad[0]!r} {template_problem(bad[0])}; pass --prompt_template.")
    if adapter_name_or_path:  # never a silent default: the adapter's recorded base, or the flag
        base, source = base_model_for(adapter_name_or_path, model_name_or_path)
    else:
        base, source = model_name_or_path or SEED_MODEL, "--model_name_or_path"
    model, processor = load_clip(base, source=source)
    if adapter_name_or_path:
        model = load_adapter(model, adapter_name_or_path)
    # Names the model cannot tell apart, or prompts too long for its text tower: refused before any image is read.
    prompt_tokens(processor.tokenizer, class_names, templates, text_limit(model, processor.tokenizer))
    return model.to(device).eval(), processor, class_names, templates


@torch.no_grad()
def predict_images(
    model,
    processor,
    class_names: list[str],
    templates: list[str],
    images: list[Image.Image],
    batch_size: int = 32,
    temperature: float = 1.0,
) -> torch.Tensor:
    """(N, C) class probabilities softmax(logits / temperature) for RGB images (T from temperature.json, fitted
    on the run's dev split; dividing by T > 0 never changes the top-1 class, only the probabilities)."""
    device = next(model.parameters()).device
    prompts = ClipClassificationCollator.from_class_names(
        processor.tokenizer, class_names, templates, text_limit(model, processor.tokenizer)
    )
    text = model.get_text_features(
        input_ids=prompts.prompt_input_ids.to(device), attention_mask=prompts.prompt_attention_mask.to(device)
    ).pooler_output
    classes = class_embeddings(text, len(class_names))
    scale = capped_logit_scale(model)
    probs = []
    for start in progress.bar(range(0, len(images), batch_size), desc="Classifying", unit="batch"):
        batch = images[start : start + batch_size]
        pixels = (
            processor.image_processor(images=batch, return_tensors="pt")["pixel_values"].float().to(device)
        )
        image = model.get_image_features(pixel_values=pixels).pooler_output
        logits = class_logits(image, classes, scale)
        probs.append((logits / temperature).softmax(dim=-1).cpu())
    return torch.cat(probs) if probs else torch.zeros(0, len(class_names))


def stored_temperature(adapter: str | None, model: str | None, off: bool = False) -> float:
    """The T a run fitted on dev (temperature.json of the adapter, or of a merged export folder); 1 without one
    or with --no_temperature."""
    if off:
        return 1.0
    source = adapter or (model if model and Path(model).is_dir() else None)
    temperature = read_temperature(source)
    if temperature is None:
        return 1.0
    if temperature != 1.0:  # say it: the probabilities differ from a plain softmax of the logits
        print(
            f"probabilities with temperature {temperature:.4f} from {TEMPERATURE} (--no_temperature: off)",
            file=sys.stderr,
        )
    return temperature


def main(argv: list[str] | None = None) -> list[tuple[str, list[tuple[str, float]]]]:
    args = predict_args(argv)
    paths = find_images(args.inputs)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, processor, class_names, templates = load_classifier(
        args.model_name_or_path, args.adapter_name_or_path, args.labels, args.prompt_template, device
    )
    images, names, skipped = read_images(paths, args.inputs)
    temperature = stored_temperature(args.adapter_name_or_path, args.model_name_or_path, args.no_temperature)
    probs = predict_images(model, processor, class_names, templates, images, args.batch_size, temperature)
    return report(args, names, probs.numpy(), class_names, skipped)
