"""Merge a LoRA adapter into its base CLIP and save a deployable CLIPModel that needs neither peft nor this project.

    clip-lora export --adapter_name_or_path runs/demo --output_dir runs/demo-merged [--with_text_embeddings]

    from transformers import AutoConfig, pipeline                       # afterwards: transformers alone
    config = AutoConfig.from_pretrained("runs/demo-merged")
    classify = pipeline("zero-shot-image-classification", model="runs/demo-merged")
    classify("cat.jpg", candidate_labels=list(config.id2label.values()), hypothesis_template="a photo of a {}")

The output holds model.safetensors, config.json (its `id2label` / `label2id` are the run's classes, in label order),
the processor files, and `class_prompts.json` ({"class_names": [...], "prompt_templates": [...]}) which
`read_class_prompts` (and `clip-lora predict --model_name_or_path`) reads, the run's `temperature.json` when the
adapter has one (the T fitted on dev: probabilities = softmax(logits / T), which predict applies), no adapter files.
Its logits equal base+adapter (float32, within 1e-4). `--with_text_embeddings` also writes `class_embeddings.safetensors`: the (C, D)
normalised class embeddings the evaluation scores with (mean over the templates) and the capped logit scale, so
inference needs only the vision tower (CLIPVisionModelWithProjection). Class names and templates come from the
adapter's model card; `--labels` / `--prompt_template` override them. `--onnx` also writes onnx/: the classifier as
one onnx graph, fp32 and int8, checked against this merged model (clip_lora/onnx_export.py, README.md in the output).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from clip_lora import artifacts, run_files
from clip_lora.adapters import adapter_base_model, base_model_for
from clip_lora.artifacts import ADAPTER_FILES
from clip_lora.calibration import read_temperature, temperature_file
from clip_lora.class_names import normalise, prompt_tokens, text_limit
from clip_lora.errors import ModelError
from clip_lora.loss import capped_logit_scale, class_embeddings
from clip_lora.model_card import label_info
from clip_lora.modeling import load_adapter, load_clip
from clip_lora.onnx_export import FP32_FILE, INT8_FILE, ONNX_DIR, write_onnx
from clip_lora.prompts import DEFAULT_TEMPLATE
from clip_lora.verb_args import check_export_folder, export_args, label_list
from collator import ClipClassificationCollator

CLASS_PROMPTS = artifacts.EXPORT_CLASS_PROMPTS
CLASS_EMBEDDINGS = artifacts.EXPORT_CLASS_EMBEDDINGS


def read_class_prompts(model_dir: str | Path) -> tuple[list[str], list[str]] | None:
    """(class names, prompt templates) an exported model carries, or None for a model without them."""
    path = Path(model_dir) / CLASS_PROMPTS
    if not path.exists():
        return None
    keys = {"class_names": run_files.STRING_LIST, "prompt_templates": run_files.STRING_LIST}
    hint = "export the run again (clip-lora export), or pass --labels"
    data = run_files.read_json_object(path, keys, error=ModelError, hint=hint)
    return list(data["class_names"]), list(data["prompt_templates"])


def read_class_embeddings(model_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """((C, D) normalised class embeddings, logit scale) written by --with_text_embeddings."""
    tensors = load_file(str(Path(model_dir) / CLASS_EMBEDDINGS))
    return tensors["class_embeddings"], tensors["logit_scale"]


@torch.no_grad()
def text_class_embeddings(model, tokenizer, class_names: list[str], templates: list[str]) -> torch.Tensor:
    """The evaluation's class embeddings: each class's template prompts encoded, normalised, averaged, normalised."""
    prompts = ClipClassificationCollator.from_class_names(
        tokenizer, class_names, templates, text_limit(model, tokenizer)
    )
    text = model.get_text_features(
        input_ids=prompts.prompt_input_ids, attention_mask=prompts.prompt_attention_mask
    ).pooler_output
    return class_embeddings(text, len(class_names))


def _labels(adapter_name_or_path: str, labels: str | None, prompt_template: str | None):
    info = label_info(adapter_name_or_path)
    if labels:
        class_names = label_list(labels)
    elif info:  # through the class-name layer, as in training
        class_names = normalise(info[0], where=f"the class names of {adapter_name_or_path}")
    else:
        class_names = None
    if not class_names:
        raise ModelError(
            f'{adapter_name_or_path} has no model card with class_names; pass them, e.g. --labels "cat,dog,car".'
        )
    templates = [prompt_template] if prompt_template else (info[1] if info else [DEFAULT_TEMPLATE])
    if any("{}" not in t for t in templates):
        raise ModelError(f"--prompt_template {templates[0]!r} needs '{{}}' where the class name goes.")
    return class_names, templates


def export_merged(
    adapter_name_or_path: str,
    output_dir: str | Path,
    model_name_or_path: str | None = None,
    with_text_embeddings: bool = False,
    labels: str | None = None,
    prompt_template: str | None = None,
    onnx: bool = False,
) -> Path:
    """Write base+adapter, merged, with its classes and prompts (+ class embeddings) to output_dir; returns it."""
    out = Path(output_dir)
    check_export_folder(out)
    adapter_base_model(adapter_name_or_path)  # a broken adapter is its own one line, first
    class_names, templates = _labels(adapter_name_or_path, labels, prompt_template)
    # A broken temperature.json is refused here, before the model loads.
    temperature = (read_temperature(adapter_name_or_path) or 1.0) if onnx else 1.0
    base, source = base_model_for(adapter_name_or_path, model_name_or_path)  # never a silent default
    model, processor = load_clip(base, source=source)
    limit = text_limit(model, processor.tokenizer)
    prompt_tokens(processor.tokenizer, class_names, templates, limit)  # before the merge: refused at once
    merged = load_adapter(model, adapter_name_or_path).merge_and_unload().eval()  # W + scale * B @ A
    merged.config.id2label = dict(enumerate(class_names))
    merged.config.label2id = {name: i for i, name in enumerate(class_names)}
    # CLIPVisionModelWithProjection reads projection_dim from vision_config (default 512), not from the top level.
    for tower in (merged.config.vision_config, merged.config.text_config):
        tower.projection_dim = merged.config.projection_dim
    # Written into a sibling folder renamed into place at the end: a full disk or a Ctrl-C mid-export leaves no
    # half-written model at --output_dir, and the rerun of the same command starts afresh.
    staging = out.with_name(f".{out.name}.{os.getpid()}{artifacts.ATOMIC_SUFFIX}")
    try:
        _write_export(
            merged,
            processor,
            staging,
            class_names,
            templates,
            with_text_embeddings,
            temperature_file(adapter_name_or_path),
        )
        if onnx:
            _write_onnx(merged, processor, staging, adapter_name_or_path, class_names, templates, temperature)
        if out.is_dir():
            out.rmdir()  # empty (checked above); os.replace cannot rename onto a folder
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_export(
    merged, processor, out: Path, class_names, templates, with_text_embeddings: bool, temperature_json=None
) -> None:
    merged.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    (out / CLASS_PROMPTS).write_text(
        json.dumps({"class_names": class_names, "prompt_templates": templates}, indent=2) + "\n"
    )
    if with_text_embeddings:
        embeds = text_class_embeddings(merged, processor.tokenizer, class_names, templates)
        scale = capped_logit_scale(merged).detach().reshape(1).float()
        metadata = {"class_names": json.dumps(class_names), "prompt_templates": json.dumps(templates)}
        save_file(
            {"class_embeddings": embeds.contiguous(), "logit_scale": scale},
            str(out / CLASS_EMBEDDINGS),
            metadata=metadata,
        )
    if temperature_json is not None:  # the T fitted on dev travels with the model (predict and ONNX apply it)
        shutil.copyfile(temperature_json, out / artifacts.TEMPERATURE)
    leftovers = [name for name in ADAPTER_FILES if (out / name).exists()]
    if leftovers:  # merge_and_unload returns the bare CLIPModel; guard against a future peft changing that
        raise ModelError(f"the merged export unexpectedly holds adapter files: {', '.join(leftovers)}")


def _write_onnx(merged, processor, out: Path, adapter, class_names, templates, temperature: float) -> None:
    """onnx/ beside the merged model (clip_lora/onnx_export.py), its checks and the README that shows how to run it."""
    from clip_lora.onnx_card import write_card
    from clip_lora.onnx_check import check_export

    # preprocessor_config.json too: transformers 5 nests the image settings in processor_config.json, while
    # onnxruntime users and Transformers.js read the flat file beside config.json (the README snippet does).
    processor.image_processor.save_pretrained(out)
    embeds = text_class_embeddings(merged, processor.tokenizer, class_names, templates)
    graph = write_onnx(merged, embeds, out, class_names, templates, temperature)
    write_card(out, check_export(graph, out, adapter, class_names), class_names, temperature)


def main(argv: list[str] | None = None) -> Path:
    args = export_args(argv)
    out = export_merged(
        args.adapter_name_or_path,
        args.output_dir,
        args.model_name_or_path,
        args.with_text_embeddings,
        args.labels,
        args.prompt_template,
        args.onnx,
    )
    print(
        f"merged CLIPModel with {CLASS_PROMPTS} -> {out} (zero-shot-image-classification pipeline, or CLIPModel)"
    )
    if args.onnx:
        from clip_lora.onnx_check import read_check, summary_lines, warning_line

        result = read_check(out)
        print(f"onnx classifier -> {out / ONNX_DIR} ({FP32_FILE}, {INT8_FILE}); see {out / 'README.md'}")
        print("\n".join(summary_lines(result)))
        warning = warning_line(result)
        if warning:
            print(warning, file=sys.stderr)
    return out
