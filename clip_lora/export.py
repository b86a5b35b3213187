"""Merge a LoRA adapter into its base CLIP and save a plain CLIPModel that needs neither peft nor this project.

    clip-lora-export --adapter_name_or_path runs/demo --output_dir runs/demo-merged
    python -m export --adapter_name_or_path me/clip-lora --output_dir merged [--model_name_or_path M]

    CLIPModel.from_pretrained("runs/demo-merged")       # afterwards: transformers alone

The base defaults to the adapter's recorded `base_model_name_or_path`. The output holds model.safetensors,
config.json and the processor files, and no adapter files; its logits equal base+adapter (float32, within 1e-4).
"""

from __future__ import annotations

from pathlib import Path

from clip_lora import validation
from clip_lora.artifacts import ADAPTER_FILES
from clip_lora.errors import ModelError, Parser
from clip_lora.modeling import adapter_base_model, load_adapter, load_clip


def export_merged(
    adapter_name_or_path: str, output_dir: str | Path, model_name_or_path: str | None = None
) -> Path:
    """Write base+adapter, merged, as a CLIPModel (safetensors) + CLIPProcessor to output_dir; returns it."""
    out = Path(output_dir)
    validation.check_output_folder("--output_dir", out)
    if out.is_dir() and any(out.iterdir()):
        raise ModelError(f"--output_dir {out} is not empty; choose a new folder for the merged model.")
    base = model_name_or_path or adapter_base_model(adapter_name_or_path)
    if not base:
        raise ModelError(
            f"{adapter_name_or_path} records no base model (adapter_config.json); pass --model_name_or_path."
        )
    model, processor = load_clip(base)
    merged = load_adapter(
        model, adapter_name_or_path
    ).merge_and_unload()  # W + scale * B @ A, LoRA layers removed
    merged.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    leftovers = [name for name in ADAPTER_FILES if (out / name).exists()]
    if leftovers:  # merge_and_unload returns the bare CLIPModel; guard against a future peft changing that
        raise ModelError(f"the merged export unexpectedly holds adapter files: {', '.join(leftovers)}")
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = Parser(prog="clip-lora export", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--adapter_name_or_path", required=True, help="A run's output_dir or a pushed adapter's id."
    )
    parser.add_argument("--output_dir", required=True, help="A new folder for the merged CLIPModel.")
    parser.add_argument("--model_name_or_path", help="Base CLIP (default: the one the adapter records).")
    args = parser.parse_args(argv)
    out = export_merged(args.adapter_name_or_path, args.output_dir, args.model_name_or_path)
    print(f"merged CLIPModel -> {out} (load with CLIPModel.from_pretrained({str(out)!r}))")
    return out
