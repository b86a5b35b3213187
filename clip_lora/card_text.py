"""The model card's prose parts: how the epoch was selected (ties and their breaking), hyper-parameters, the snippet."""

from __future__ import annotations

import json

from clip_lora.selection import SelectionRule, evaluations, kept_evaluation

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
    "global_batch_size",
    "max_grad_norm",
)


def setting_text(value) -> str:
    """A setting as a reader types it: a whole number stored as a float (lora_alpha 32.0, num_train_epochs 5.0,
    TrainingArguments' float fields) as the integer, every other value as it is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def hyper_parameter_table(config: dict) -> str:
    return "| parameter | value |\n|---|---|\n" + "".join(
        f"| `{key}` | `{setting_text(config[key])}` |\n" for key in HYPER_PARAMETERS if key in config
    )


LIBRARY_ORDER = ("torch", "transformers", "peft", "accelerate", "datasets", "python")
SPLITS = ("train", "dev", "val")


def ordered(keys, order: tuple[str, ...]) -> list[str]:
    """run_config.json stores keys sorted; the card lists them in reading order, unknown ones last."""
    return sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))


def lost_classes_line(names: list[str], shown: int = 20) -> str:
    """`3 classes (a, b, c)`, the first `shown` named: one line even for a thousand classes."""
    listed = ", ".join(map(repr, names[:shown])) + (
        f", and {len(names) - shown} more" if len(names) > shown else ""
    )
    return f"{len(names)} class{'es' if len(names) != 1 else ''} ({listed})"


def untrained_text(names: list[str] | None) -> str:
    """The data row's note on classes with no training image (none: nothing)."""
    if not names:
        return ""
    verb = "has" if len(names) == 1 else "have"
    return f"; **{lost_classes_line(names)} {verb} no training image** (evaluated, never trained on)"


def provenance_table(config: dict, trained: bool) -> str:
    """What a rerun needs, from run_config.json's `provenance` (empty for a run made before it was recorded)."""
    record = config.get("provenance")
    if not record:
        return ""
    batch, code, versions, data = record["batch"], record["code"], record["versions"], record["data"]
    rows = []
    if trained:
        steps = batch["gradient_accumulation_steps"]
        rows += [
            (
                "batch",
                f"{batch['processes']} process{'es' if batch['processes'] > 1 else ''} x "
                f"{batch['per_device_train_batch_size']} per device x {steps} accumulation step"
                f"{'s' if steps > 1 else ''} = global batch {batch['global_batch_size']}",
            ),
            ("gradient clipping", f"max_grad_norm {setting_text(batch['max_grad_norm'])}"),
        ]
    precision = {"no": "fp32 (no mixed precision)"}.get(batch["precision"], f"{batch['precision']} autocast")
    commit = code["git_commit"]
    rows += [
        ("precision", precision),
        (
            "code",
            f"clip-lora {code['clip_lora']}, "
            + (f"commit `{commit[:12]}`" if commit else "not run from a git checkout (no commit)")
            + (" with uncommitted changes" if code.get("git_dirty") else ""),
        ),
        ("libraries", ", ".join(f"{name} {versions[name]}" for name in ordered(versions, LIBRARY_ORDER))),
        (
            "data",
            ", ".join(f"{name} {data['splits'][name]['images']}" for name in ordered(data["splits"], SPLITS))
            + f" images; files sha256 `{data['files_sha256'][:16]}` (image ids and sizes, sorted)"
            + untrained_text(data.get("classes_without_training_images")),
        ),
    ]
    return "| | |\n|---|---|\n" + "".join(f"| {what} | {value} |\n" for what, value in rows)


def selection(state: dict, metric: str, rule: SelectionRule | None = None) -> dict:
    """The kept evaluation, every evaluation tied with it on the metric, and whether the tie-breaker chose it.

    The kept one is the evaluation logged at `best_global_step`, what Trainer recorded and `load_best_model_at_end`
    restored. `rule` (selection.py; default: the rule for `metric`) says which of the tied it should have kept:
    `by_rule` is False for a run made before ties were broken (Trainer kept the first)."""
    rule = rule or SelectionRule.of(metric)
    log = state.get("log_history", [])
    evals = evaluations(log, rule.metric)
    kept = kept_evaluation(log, state.get("best_global_step"), rule.metric)
    best = state.get("best_metric")
    key = f"eval_{rule.metric}"
    tied = [e for e in evals if best is not None and e[key] == best]
    chosen = rule.best(tied) if tied else None
    return {
        "best": best,
        "kept_epoch": kept["epoch"] if kept else None,
        "tied_epochs": [e["epoch"] for e in tied],
        "tied_values": [e.get(f"eval_{rule.tie_breaker}") for e in tied],
        "kept_value": kept.get(f"eval_{rule.tie_breaker}") if kept else None,
        "by_rule": kept is not None and chosen is not None and tied[chosen] is kept,
        "evaluations": len(evals),
    }


def _epochs(epochs: list[float]) -> str:
    """'3-8' for a run of three or more consecutive whole epochs, else each one: '3, 4, 6-8'."""
    parts: list[list[float]] = []
    for epoch in epochs:
        if (
            parts
            and float(epoch).is_integer()
            and float(parts[-1][-1]).is_integer()
            and epoch == parts[-1][-1] + 1
        ):
            parts[-1].append(epoch)
        else:
            parts.append([epoch])
    return ", ".join(
        f"{run[0]:g}-{run[-1]:g}" if len(run) >= 3 else ", ".join(f"{e:g}" for e in run) for run in parts
    )


def _tie_outcome(chosen: dict, rule: SelectionRule, best: float) -> str:
    """The sentence for a tie: which of the tied evaluations was kept, and by what."""
    tied, kept = chosen["tied_epochs"], chosen["kept_epoch"]
    head = f"epochs {_epochs(tied)} tied at {best:.4f} dev {rule.metric}"
    values = [v for v in chosen["tied_values"] if v is not None]
    if not chosen["by_rule"]:  # a run from before the tie-breaker: Trainer's first-of-a-tie
        first = "the first" if tied[0] == kept else f"epoch {kept:g}"
        return (
            f"{head}; {first} was kept (Trainer replaces its best checkpoint only on a strictly better value)"
        )
    breaker = rule.describe_tie_breaker()
    if not values:  # the tie-breaker was not logged
        return f"{head}; the first was kept (no dev {rule.tie_breaker} logged to break the tie)"
    if len(set(values)) < 2:  # the tie-breaker tied as well: the earliest stays
        return f"{head} and on {breaker.split(' ', 2)[-1]}; the first, epoch {kept:g}, was kept"
    other = max(values) if not rule.tie_greater_is_better else min(values)
    return (
        f"{head}; epoch {kept:g} kept: {breaker}, {chosen['kept_value']:.4f} "
        f"(the tied epochs' dev {rule.tie_breaker} ranged to {other:.4f})"
    )


def selection_text(config: dict, state: dict | None, results: dict) -> str:
    if state is None:
        used = config.get("adapter_name_or_path")
        what = "a saved adapter" if used else "the base model (zero-shot)"
        return f"No training in this run: it evaluates {what} on val once, with the class prompts."
    rule = SelectionRule.from_config(config)
    chosen = selection(state, rule.metric, rule)
    best, kept = chosen["best"], chosen["kept_epoch"]
    if kept is None or best is None:
        outcome = "the best dev evaluation was kept"
    elif len(chosen["tied_epochs"]) > 1:
        outcome = _tie_outcome(chosen, rule, best)
    else:
        outcome = f"epoch {kept:g} had the best dev {rule.metric} ({best:.4f}) and was kept"
    return (
        f"After every epoch the adapter was evaluated on a **dev split** ({config.get('dev_split_ratio', 0):.0%} of "
        f"train, stratified, seed {config.get('seed')}); of {chosen['evaluations']} evaluations, {outcome}. "
        f"Rule: the best dev {rule.metric}, ties broken by {rule.describe_tie_breaker()}. "
        f"The val split was used **once**, after training, with that adapter: the val accuracy above "
        f"({results.get('eval_accuracy', float('nan')):.4f}) is not a maximum over epochs."
    )


def snippet(
    base: str,
    adapter: str | None,
    class_names: list[str],
    templates: list[str],
    temperature: float | None = None,
) -> str:
    """Python that classifies image.jpg: base CLIP (+ the adapter when given), the run's prompts and scoring; with
    the temperature the run fitted on dev, its probabilities are softmax(logits / T), as `clip-lora predict`'s."""
    imports = "from peft import PeftModel\n" if adapter else ""
    if adapter:
        load = f"""base, adapter = {json.dumps(base)}, {json.dumps(adapter)}
model = PeftModel.from_pretrained(CLIPModel.from_pretrained(base), adapter).eval()"""
    else:
        load = f"""base = {json.dumps(base)}
model = CLIPModel.from_pretrained(base).eval()"""
    scaled = (
        f"logits = logits / {temperature!r}  # temperature fitted on the dev split (temperature.json)\n"
        if temperature is not None and temperature != 1.0
        else ""
    )
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
{scaled}probs = logits.softmax(dim=-1)[0]
print(class_names[int(probs.argmax())], round(float(probs.max()), 4))
```"""
