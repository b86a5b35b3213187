"""The model card (README.md in output_dir), generated only from the run's artifacts.

    model_card.write_model_card("runs/demo")                         # local card; the snippet loads the folder
    model_card.write_model_card(output_dir, repo_id="me/clip-lora")   # card for the pushed repo
    python model_card.py runs/demo [--repo_id me/clip-lora]

Reads all_results.json, classification_report.json, run_config.json and (when the run trained) trainer_state.json.
It replaces the template README.md that PEFT's save_pretrained writes. The metadata also carries `class_names` and
`prompt_templates`, which `clip-lora-predict` reads to classify with the adapter as it was trained.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from clip_lora import artifacts
from clip_lora.prompts import DEFAULT_TEMPLATE
from metrics import report_to_markdown

README = artifacts.MODEL_CARD
CLASSIFICATION_REPORT = artifacts.CLASSIFICATION_REPORT_JSON
TRAINER_STATE = artifacts.TRAINER_STATE
LICENSE = "apache-2.0"  # this project's license, for the adapter weights; the base model keeps its own
IMAGENETTE_HUB_ID = "frgfm/imagenette"  # the same imagenette2 release as the fast.ai archive we download
HYPER_PARAMETERS = (
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_towers",
    "loss",
    "prompt_template",
    "prompt_templates",
    "learning_rate",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "warmup_steps",
    "weight_decay",
    "lr_scheduler_type",
    "optim",
    "seed",
    "dev_split_ratio",
)


def _is_local(name: str | None) -> bool:
    return bool(name) and (Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1)


def _hub_datasets(config: dict) -> list[str] | None:
    name = config.get("dataset_name")
    if name == "imagenette":
        return [IMAGENETTE_HUB_ID]
    return None if _is_local(name) else [name]


def _best_epoch(state: dict) -> tuple[float | None, int]:
    """(epoch of the selected checkpoint, number of dev evaluations) from trainer_state.json."""
    evals = [
        e for e in state.get("log_history", []) if any(k.startswith("eval_") for k in e) and "epoch" in e
    ]
    best_step = state.get("best_global_step")
    epoch = next((e["epoch"] for e in evals if e.get("step") == best_step), None)
    return epoch, len(evals)


def _selection_text(config: dict, state: dict | None, results: dict) -> str:
    if state is None:
        used = config.get("adapter_name_or_path") or "the base model (zero-shot)"
        return f"No training in this run: it evaluates {used} on val."
    metric = config.get("metric_for_best_model") or "accuracy"
    epoch, evals = _best_epoch(state)
    epoch_text = f"epoch {epoch:g}" if epoch is not None else "the best epoch"
    best = state.get("best_metric")
    best_text = f" (dev {metric} {best:.4f})" if best is not None else ""
    return (
        f"After every epoch the adapter was evaluated on a **dev split** ({config.get('dev_split_ratio', 0):.0%} of "
        f"train, stratified, seed {config.get('seed')}); {epoch_text}{best_text} of {evals} evaluations had the best "
        f"dev {metric} and was kept. The val split was used **once**, after training, with that adapter: the val "
        f"accuracy above ({results.get('eval_accuracy', float('nan')):.4f}) is not a maximum over epochs."
    )


def _templates(config: dict) -> list[str]:
    """The prompt templates the run scored with (one, or an ensemble resolved by prompts.py)."""
    single = config.get("prompt_template", DEFAULT_TEMPLATE)
    spec = config.get("prompt_templates")
    if not spec or spec == "single":
        return [single]
    from clip_lora import prompts  # only runs that used --prompt_templates need it

    return list(prompts.resolve_templates(spec, single))


def label_info(adapter_name_or_path: str) -> tuple[list[str], list[str]] | None:
    """(class names, prompt templates) an adapter was trained with, from its card (folder or hub id), or None."""
    path = Path(adapter_name_or_path)
    try:
        card = ModelCard.load(path / README if path.is_dir() else adapter_name_or_path)
    except Exception:  # noqa: BLE001 - no card, an unreachable hub, another project's adapter: the caller asks
        return None
    data = card.data.to_dict()
    if not data.get("class_names"):
        return None
    return list(data["class_names"]), list(data.get("prompt_templates") or [DEFAULT_TEMPLATE])


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _snippet(base: str, adapter: str, class_names: list[str], templates: list[str]) -> str:
    return f"""```python
import torch
from PIL import Image
from peft import PeftModel
from transformers import CLIPModel, CLIPProcessor

base, adapter = {json.dumps(base)}, {json.dumps(adapter)}
model = PeftModel.from_pretrained(CLIPModel.from_pretrained(base), adapter).eval()
processor = CLIPProcessor.from_pretrained(base)
class_names = {json.dumps(class_names)}
templates = {json.dumps(templates)}
prompts = [template.format(name) for name in class_names for template in templates]
inputs = processor(text=prompts, images=Image.open("image.jpg").convert("RGB"), return_tensors="pt", padding=True)
with torch.no_grad():
    out = model(**inputs)  # image_embeds and text_embeds come back L2-normalised
    classes = out.text_embeds.view(len(class_names), len(templates), -1).mean(dim=1)  # template ensemble per class
    classes = classes / classes.norm(dim=-1, keepdim=True)
    logits = model.logit_scale.exp().clamp(max=100) * out.image_embeds @ classes.T
probs = logits.softmax(dim=-1)[0]
print(class_names[int(probs.argmax())], round(float(probs.max()), 4))
```"""


def build_model_card(output_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The card of the run in output_dir; `repo_id` names the pushed adapter (else the snippet loads the folder)."""
    out = Path(output_dir)
    results = artifacts.read_json(out / artifacts.ALL_RESULTS)
    report = artifacts.read_json(out / CLASSIFICATION_REPORT)
    config = artifacts.read_json(out / artifacts.RUN_CONFIG)
    state = artifacts.read_json(out / TRAINER_STATE) if (out / TRAINER_STATE).is_file() else None
    class_names = list(report["per_class"])
    base = config["model_name_or_path"]
    base_ref = str(Path(base).resolve()) if Path(base).is_dir() else base
    dataset = config.get("dataset_name")
    templates = _templates(config)
    name = repo_id or out.resolve().name
    data = ModelCardData(
        model_name=name,
        base_model=None if _is_local(base) else base,
        library_name="peft",
        license=LICENSE,
        datasets=_hub_datasets(config),
        pipeline_tag="zero-shot-image-classification",
        tags=[
            "clip",
            "lora",
            "peft",
            "image-classification",
            "transformers",
            *(["imagenette"] if dataset == "imagenette" else []),
        ],
        eval_results=[
            EvalResult(
                task_type="image-classification",
                dataset_type=(_hub_datasets(config) or [str(dataset)])[0],
                dataset_name=str(dataset),
                dataset_split="validation",
                metric_type="accuracy",
                metric_value=results["eval_accuracy"],
                metric_name="Accuracy (val, selected adapter)",
            )
        ],
        class_names=class_names,
        prompt_templates=templates,
    )
    rows = [
        ("zero-shot (base model)", "val", "zero_shot_accuracy", "zero_shot_macro_f1"),
        ("LoRA, selected adapter", "val", "eval_accuracy", "eval_macro_f1"),
        ("LoRA, selected adapter", "dev (selection)", "dev_accuracy", "dev_macro_f1"),
    ]
    table = "| model | split | accuracy | macro F1 |\n|---|---|---:|---:|\n" + "".join(
        f"| {label} | {split} | {_fmt(results[acc])} | {_fmt(results.get(f1, ''))} |\n"
        for label, split, acc, f1 in rows
        if acc in results
    )
    hyper = "| parameter | value |\n|---|---|\n" + "".join(
        f"| `{key}` | `{config[key]}` |\n" for key in HYPER_PARAMETERS if key in config
    )
    params = ""
    if "trainable_params" in results:
        params = (
            f"Trainable parameters: {results['trainable_params']:,} of {results['total_params']:,} "
            f"({100 * results['trainable_params'] / results['total_params']:.3f}%).\n"
        )
    body = f"""
# {name}

A LoRA adapter for CLIP (`{base}`) that classifies images into {len(class_names)} classes by comparing each image
with class prompts such as `{templates[0]}` ({len(templates)} template(s) per class). Trained on `{dataset}` with `transformers.Trainer` and `peft`.

## Results

{table}
Val: {report["total"]} images. Numbers from `all_results.json` of the run.

## Per-class results (val, selected adapter)

{report_to_markdown(report)}
## How the adapter was selected

{_selection_text(config, state, results)}

## Training hyper-parameters

{hyper}
{params}
## Use it

Loads the adapter with plain `peft` + `transformers` and classifies `image.jpg`:

{_snippet(base_ref, repo_id or str(out.resolve()), class_names, templates)}

Or with this project: `clip-lora-predict --adapter_name_or_path {repo_id or out} image.jpg`.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_card(output_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write README.md into output_dir (replacing PEFT's template); returns its path."""
    path = Path(output_dir) / README
    artifacts.atomic_write_text(path, str(build_model_card(output_dir, repo_id)))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the model card (README.md) of a finished run.")
    parser.add_argument("output_dir")
    parser.add_argument(
        "--repo_id", default=None, help="The Hub repo the adapter is pushed to (for the snippet)."
    )
    args = parser.parse_args(argv)
    print(write_model_card(args.output_dir, args.repo_id))


if __name__ == "__main__":
    main()
