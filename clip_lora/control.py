"""The control set: what fine-tuning cost outside the task (--control_eval_dir).

    results.update(control.run(trainer, model, control_dir, transform, templates, max_tokens, output_dir, alphas))

Images of classes the adapter was never trained on, in their own label space: the folder names are the control's
class names (a name the task also has is fine: nothing is shared but the prompt templates). LoRA on the text tower
moves every class embedding, so the control accuracy can move although none of its classes was trained. Scored with
the base model (adapter switched off), with the adapter, and with the adapter scaled by each WiSE-FT alpha. Writes
control.json, control_zero_shot_predictions.csv and control_predictions.csv (main process); the logits come back
gathered over every process (the Trainer's evaluation), so N processes write what one writes.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager, nullcontext
from pathlib import Path

import datasets
from peft import PeftModel

from clip_lora import artifacts
from clip_lora.data import _scan_split, class_features
from clip_lora.data_layout import control_classes
from clip_lora.placeholders import kept_ids
from clip_lora.stats import mcnemar
from clip_lora.wise_ft import lora_scaled

logger = logging.getLogger(__name__)


def load_control_folder(path: str | Path) -> datasets.Dataset:
    """<class>/<images> (or val/<class>/...) -> a Dataset labelled with the control's own class names."""
    root = Path(path).expanduser()
    split_dir, folders, names = control_classes(root)
    rows = _scan_split(split_dir, root, {folder: i for i, folder in enumerate(folders)})
    return datasets.Dataset.from_dict(rows, features=class_features(names))


@dataclasses.dataclass
class ControlSet:
    """The control images and what scores them: the task's tokenizer, templates and text length limit."""

    dataset: datasets.Dataset
    tokenizer: object
    templates: list[str]
    max_tokens: int

    @property
    def class_names(self) -> list[str]:
        return self.dataset.features["label"].names


def prepare(control_dir: str | None, tokenizer, templates: list[str], max_tokens: int) -> ControlSet | None:
    """The control set (None without --control_eval_dir), its class names checked against the text tower now,
    before anything is trained: a bad control folder is one line at the start, not an error after training."""
    if not control_dir:
        return None
    from clip_lora.class_names import prompt_tokens

    dataset = load_control_folder(control_dir)
    prompt_tokens(tokenizer, dataset.features["label"].names, templates, max_tokens)
    return ControlSet(dataset, tokenizer, list(templates), max_tokens)


@contextmanager
def control_prompts(trainer, tokenizer, class_names: list[str], templates: list[str], max_tokens: int):
    """Within the block the trainer scores against the control's class prompts (same templates), not the task's."""
    from collator import ClipClassificationCollator  # here: the CLI reads this module before torch loads

    task, num_classes = trainer.data_collator, trainer.num_classes
    prompts = ClipClassificationCollator.from_class_names(tokenizer, class_names, templates, max_tokens)
    # Only the prompts change: the pixel handling (e.g. normalising cached uint8 pixels) stays the task's.
    trainer.data_collator = dataclasses.replace(
        task, prompt_input_ids=prompts.prompt_input_ids, prompt_attention_mask=prompts.prompt_attention_mask
    )
    trainer.num_classes = len(class_names)
    try:
        yield
    finally:
        trainer.data_collator, trainer.num_classes = task, num_classes


def run(trainer, model, control: ControlSet, transform, output_dir: Path, alphas: list[float]) -> dict:
    """Evaluate the control set zero-shot, fine-tuned and per alpha; returns the keys all_results.json gets."""
    dataset, class_names = control.dataset, control.class_names
    ids = list(dataset["image_id"])  # read before the transform replaces the columns
    dataset.set_transform(transform)
    main_process = trainer.is_world_process_zero()
    adapter = isinstance(model, PeftModel)
    outputs = {}
    with control_prompts(trainer, control.tokenizer, class_names, control.templates, control.max_tokens):
        with model.disable_adapter() if adapter else nullcontext():
            outputs["zero_shot"] = trainer.predict(dataset, metric_key_prefix="control_zero_shot")
        outputs["fine_tuned"] = trainer.predict(dataset, metric_key_prefix="control_eval")
        kept = kept_ids(ids, trainer.kept_rows)
        per_alpha = []
        for alpha in alphas if adapter else []:
            with lora_scaled(model, alpha):
                out = trainer.predict(dataset, metric_key_prefix="control_wise")
            per_alpha.append({"alpha": alpha, "accuracy": out.metrics["control_wise_accuracy"]})
            outputs[f"alpha_{alpha:g}"] = out
    zero_shot, fine_tuned = outputs["zero_shot"], outputs["fine_tuned"]
    before = zero_shot.metrics["control_zero_shot_accuracy"]
    after = fine_tuned.metrics["control_eval_accuracy"]
    paired = mcnemar(
        zero_shot.label_ids, zero_shot.predictions.argmax(axis=1), fine_tuned.predictions.argmax(axis=1)
    )
    record = {
        "class_names": class_names,
        "images": len(kept),
        "zero_shot_accuracy": before,
        "eval_accuracy": after,
        "difference": after - before,
        "mcnemar": paired,
        "wise_ft": per_alpha,
    }
    if main_process:
        for csv_name, out in (
            (artifacts.CONTROL_ZERO_SHOT_PREDICTIONS, zero_shot),
            (artifacts.CONTROL_PREDICTIONS, fine_tuned),
        ):
            artifacts.write_predictions(
                output_dir / csv_name, kept, out.label_ids, out.predictions, class_names
            )
        artifacts.write_json(output_dir / artifacts.CONTROL_JSON, record)
    logger.info(
        "control set (%d images): accuracy %.4f zero-shot -> %.4f fine-tuned", len(kept), before, after
    )
    trainer.last_control_outputs = outputs  # the logits, for a caller (or a test) that compares them
    return {
        "control_zero_shot_accuracy": before,
        "control_eval_accuracy": after,
        "control_accuracy_difference": after - before,
        "control_mcnemar_p_value": paired["p_value"],
    }
