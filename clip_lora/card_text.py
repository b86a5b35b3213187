"""The model card's prose parts: how the epoch was selected (ties included), hyper-parameters, the usage snippet."""

from __future__ import annotations

import json

# What a snippet says where the run only knows a local folder: the reader fills it in (no machine's absolute path).
BASE_PLACEHOLDER = "PATH/TO/BASE_CLIP"
ADAPTER_PLACEHOLDER = "PATH/TO/ADAPTER"
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


def hyper_parameter_table(config: dict) -> str:
    return "| parameter | value |\n|---|---|\n" + "".join(
        f"| `{key}` | `{config[key]}` |\n" for key in HYPER_PARAMETERS if key in config
    )


def dev_evaluations(state: dict, metric: str) -> list[tuple[float, int, float]]:
    """(epoch, step, dev value of `metric`) of every dev evaluation in trainer_state.json, in order."""
    key = f"eval_{metric}"
    return [
        (e["epoch"], e.get("step"), e[key]) for e in state.get("log_history", []) if key in e and "epoch" in e
    ]


def selection(state: dict, metric: str) -> dict:
    """The kept evaluation and every evaluation tied with it, from trainer_state.json.

    Trainer replaces its best checkpoint only when a new value is strictly better (`np.greater` / `np.less` in
    `Trainer._determine_best_metric`), so among tied evaluations the first is the one `load_best_model_at_end`
    restores; `best_global_step` records it."""
    evals = dev_evaluations(state, metric)
    best, kept_step = state.get("best_metric"), state.get("best_global_step")
    kept = next((epoch for epoch, step, _ in evals if step == kept_step), None)
    tied = [epoch for epoch, _, value in evals if best is not None and value == best]
    return {"best": best, "kept_epoch": kept, "tied_epochs": tied, "evaluations": len(evals)}


def _epochs(epochs: list[float]) -> str:
    return ", ".join(f"{epoch:g}" for epoch in epochs)


def selection_text(config: dict, state: dict | None, results: dict) -> str:
    if state is None:
        used = config.get("adapter_name_or_path")
        what = "a saved adapter" if used else "the base model (zero-shot)"
        return f"No training in this run: it evaluates {what} on val once, with the class prompts."
    metric = (config.get("metric_for_best_model") or "accuracy").removeprefix("eval_")
    chosen = selection(state, metric)
    best, kept = chosen["best"], chosen["kept_epoch"]
    if kept is None or best is None:
        outcome = "the best dev evaluation was kept"
    elif len(chosen["tied_epochs"]) > 1:
        first = "the first" if chosen["tied_epochs"][0] == kept else f"epoch {kept:g}"
        outcome = (
            f"epochs {_epochs(chosen['tied_epochs'])} tied at {best:.4f} dev {metric}; {first} was kept "
            f"(Trainer replaces its best checkpoint only on a strictly better value)"
        )
    else:
        outcome = f"epoch {kept:g} had the best dev {metric} ({best:.4f}) and was kept"
    return (
        f"After every epoch the adapter was evaluated on a **dev split** ({config.get('dev_split_ratio', 0):.0%} of "
        f"train, stratified, seed {config.get('seed')}); of {chosen['evaluations']} evaluations, {outcome}. "
        f"The val split was used **once**, after training, with that adapter: the val accuracy above "
        f"({results.get('eval_accuracy', float('nan')):.4f}) is not a maximum over epochs."
    )


def snippet(base: str, adapter: str | None, class_names: list[str], templates: list[str]) -> str:
    """Python that classifies image.jpg: base CLIP (+ the adapter when given), the run's prompts and scoring."""
    imports = "from peft import PeftModel\n" if adapter else ""
    if adapter:
        load = f"""base, adapter = {json.dumps(base)}, {json.dumps(adapter)}
model = PeftModel.from_pretrained(CLIPModel.from_pretrained(base), adapter).eval()"""
    else:
        load = f"""base = {json.dumps(base)}
model = CLIPModel.from_pretrained(base).eval()"""
    return f"""```python
import torch
from PIL import Image
{imports}from transformers import CLIPModel, CLIPProcessor

{load}
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
