"""WiSE-FT for a LoRA adapter: evaluate the adapter scaled by alpha, from zero-shot (0) to fine-tuned (1).

    python train_clip_lora.py ... --wise_alphas 0,0.25,0.5,0.75,1 [--robustness_eval_dir shifted/]   # after training
    python train_clip_lora.py --do_train false --adapter_name_or_path runs/x --wise_alphas 0,0.5,1 ...  # a saved one

Weight-space ensembling (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models") interpolates between the
zero-shot and the fine-tuned weights: W0 + alpha * (W1 - W0). With LoRA, W1 - W0 is the adapter's B @ A * scaling,
so the interpolation is exactly the adapter with its scaling multiplied by alpha: no retraining, no second model.
Writes wise_ft.json (accuracy / macro F1 per alpha on val and on the shifted set), wise_ft.png and one predictions
CSV per alpha and set under wise_ft/.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from clip_lora import artifacts
from clip_lora.data import load_eval_folder
from clip_lora.modeling import ModelError
from clip_lora.placeholders import kept_ids

logger = logging.getLogger(__name__)

WISE_FT_JSON = artifacts.WISE_FT_JSON
WISE_FT_PNG = artifacts.WISE_FT_PNG


@contextmanager
def lora_scaled(model, alpha: float):
    """Within the block every LoRA layer's scaling is multiplied by alpha; the saved scalings come back after."""
    layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
    if not layers:
        raise ModelError("WiSE-FT needs a LoRA adapter: train one or pass --adapter_name_or_path.")
    saved = [dict(layer.scaling) for layer in layers]
    try:
        for layer, scaling in zip(layers, saved, strict=True):
            for adapter, value in scaling.items():
                layer.scaling[adapter] = value * alpha
        yield model
    finally:
        for layer, scaling in zip(layers, saved, strict=True):
            layer.scaling.update(scaling)


def csv_name(split: str, alpha: float) -> str:
    return f"{split}_alpha_{alpha:g}.csv"


def run(
    trainer, model, eval_sets: dict, class_names: list[str], output_dir: Path, alphas: list[float]
) -> dict:
    """Evaluate every alpha on every set ({name: (Dataset, image ids)}); write json, png and CSVs (main process)."""
    if not isinstance(model, PeftModel):
        raise ModelError("--wise_alphas needs a LoRA adapter: train one or pass --adapter_name_or_path.")
    folder = Path(output_dir) / "wise_ft"
    main_process = trainer.is_world_process_zero()
    if main_process:
        folder.mkdir(parents=True, exist_ok=True)
    results = {name: [] for name in eval_sets}
    for alpha in alphas:
        with lora_scaled(model, alpha):
            for name, (dataset, image_ids) in eval_sets.items():
                out = trainer.predict(dataset, metric_key_prefix=name)
                entry = {
                    "alpha": alpha,
                    **{
                        k.removeprefix(f"{name}_"): v
                        for k, v in out.metrics.items()
                        if k.endswith(("accuracy", "macro_f1", "loss"))
                    },
                }
                results[name].append(entry)
                if main_process:
                    ids = kept_ids(image_ids, trainer.kept_rows)  # images unreadable when loaded are left out
                    artifacts.write_predictions(
                        folder / csv_name(name, alpha), ids, out.label_ids, out.predictions, class_names
                    )
                logger.info(
                    "WiSE-FT alpha %g on %s: accuracy %.4f", alpha, name, entry.get("accuracy", np.nan)
                )
    summary = {
        "alphas": list(alphas),
        "num_images": {n: len(ids) for n, (_, ids) in eval_sets.items()},
        "results": results,
    }
    if main_process:
        artifacts.write_json(Path(output_dir) / WISE_FT_JSON, summary)
        plot(summary, Path(output_dir) / WISE_FT_PNG)
    return summary


def eval_sets(
    val, val_ids, transform, robustness_eval_dir: str | None, class_names: list[str], class_names_file=None
):
    """{'val': (val, ids), 'robustness': (the shifted folder, ids)} (the latter only when given), transformed like val."""
    sets = {"val": (val, val_ids)}
    if robustness_eval_dir:
        shifted = load_eval_folder(robustness_eval_dir, class_names, class_names_file)
        ids = list(shifted["image_id"])  # read before the transform replaces the columns
        shifted.set_transform(transform)
        sets["robustness"] = (shifted, ids)
    return sets


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, entries in summary["results"].items():
        ax.plot([e["alpha"] for e in entries], [e["accuracy"] for e in entries], marker="o", label=name)
    ax.set_xlabel("alpha (0 = zero-shot, 1 = fine-tuned LoRA)")
    ax.set_ylabel("accuracy")
    ax.set_title("WiSE-FT: LoRA scaled by alpha")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with artifacts.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
