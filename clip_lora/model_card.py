"""The model card (README.md in output_dir), generated only from the run's artifacts: it states what the run did.

    model_card.write_model_card("runs/demo")                         # local card
    model_card.write_model_card(output_dir, repo_id="me/clip-lora")   # card for the pushed repo
    python -m clip_lora.model_card runs/demo [--repo_id me/clip-lora]

Reads all_results.json, classification_report.json, run_config.json and (when the run trained) trainer_state.json.
It replaces the template README.md that PEFT's save_pretrained writes. The metadata also carries `class_names` and
`prompt_templates`, which `clip-lora predict` reads to classify with the adapter as it was trained.

What the card claims is what the run knows: dataset metadata only for a public dataset (the fast.ai archive or a Hub
id, see provenance.py), a local folder described as one; snippets name the Hub ids of what was pushed and
placeholders for local folders (never a machine's absolute path); an evaluation-only run gets an evaluation card.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from clip_lora import artifacts, offline, run_files
from clip_lora.calibration import read_temperature
from clip_lora.calibration_card import calibration_section
from clip_lora.card_text import (
    ADAPTER_PLACEHOLDER,
    BASE_PLACEHOLDER,
    hyper_parameter_table,
    provenance_table,
    selection_text,
    snippet,
)
from clip_lora.control_card import control_section
from clip_lora.errors import ModelError
from clip_lora.prompts import DEFAULT_TEMPLATE
from clip_lora.provenance import FASTAI_TITLES, data_source
from metrics import report_to_markdown

README = artifacts.MODEL_CARD
CLASSIFICATION_REPORT = artifacts.CLASSIFICATION_REPORT_JSON
TRAINER_STATE = artifacts.TRAINER_STATE
LICENSE = "apache-2.0"  # this project's license, for the adapter weights; the base model keeps its own


def is_local(name: str | None) -> bool:
    """A filesystem path rather than a Hub id (an id has at most one '/', and no leading '.', '/' or '~')."""
    return bool(name) and (Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1)


def evaluated_model(do_train: bool, adapter_name_or_path: str | None) -> str:
    """What a run's final evaluation scored, in words (for the reports' titles)."""
    if do_train:
        return "LoRA adapter selected on dev"
    if adapter_name_or_path:
        shown = Path(adapter_name_or_path).name if is_local(adapter_name_or_path) else adapter_name_or_path
        return f"adapter {shown} (evaluation only)"
    return "base model, zero-shot (evaluation only)"


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
    offline.require_cached(adapter_name_or_path, README)
    try:
        card = ModelCard.load(path / README if path.is_dir() else adapter_name_or_path)
    except Exception:  # noqa: BLE001 - no card, an unreachable hub, another project's adapter: the caller asks
        return None
    data = card.data.to_dict()
    if not data.get("class_names"):
        return None
    keys = {"class_names": run_files.STRING_LIST, "prompt_templates": run_files.STRING_LIST}
    run_files.check_keys(
        data, optional=keys, where=f"the model card of {adapter_name_or_path}", error=ModelError
    )
    return list(data["class_names"]), list(data.get("prompt_templates") or [DEFAULT_TEMPLATE])


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def data_text(source: dict) -> str:
    """One sentence naming the data: a public dataset by its id, a local folder as a local folder."""
    if source["kind"] == "fastai_archive":
        return (
            f"{FASTAI_TITLES[source['dataset']]}, from fast.ai's archive `{source['archive'].rsplit('/', 1)[-1]}` "
            f"(the release published on the Hub as `{source['hub_id']}`)"
        )
    if source["kind"] == "hub":
        return f"the Hub dataset `{source['hub_id']}`"
    layout = (
        f" in the {FASTAI_TITLES.get(source.get('layout'), '')} folder layout" if source.get("layout") else ""
    )
    return f"a local image folder{layout} (not a published dataset, so this card names none)"


def _results_table(results: dict, trained: bool, adapter: str | None) -> str:
    rows = [("zero-shot (base model)", "val", "zero_shot_accuracy", "zero_shot_macro_f1")]
    if trained:
        rows += [
            ("LoRA, selected adapter", "val", "eval_accuracy", "eval_macro_f1"),
            ("LoRA, selected adapter", "dev (selection)", "dev_accuracy", "dev_macro_f1"),
        ]
    elif adapter:
        rows.append(("evaluated adapter", "val", "eval_accuracy", "eval_macro_f1"))
    return "| model | split | accuracy | macro F1 |\n|---|---|---:|---:|\n" + "".join(
        f"| {label} | {split} | {_fmt(results[acc])} | {_fmt(results.get(f1, ''))} |\n"
        for label, split, acc, f1 in rows
        if acc in results
    )


def build_model_card(output_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The card of the run in output_dir; `repo_id` is the Hub id the adapter is pushed to (None: not pushed)."""
    out = Path(output_dir)
    results = run_files.read_json_object(out / artifacts.ALL_RESULTS)
    report = run_files.read_json_object(out / CLASSIFICATION_REPORT, {"per_class": run_files.OBJECT})
    config = run_files.read_json_object(out / artifacts.RUN_CONFIG, {"model_name_or_path": run_files.STRING})
    state = run_files.read_trainer_state(out / TRAINER_STATE) if (out / TRAINER_STATE).exists() else None
    trained = bool(config.get("do_train", state is not None)) and state is not None
    adapter = config.get("adapter_name_or_path")
    class_names = list(report["per_class"])
    base = config["model_name_or_path"]
    source = data_source(config)
    public_id = source.get("hub_id")
    templates = _templates(config)
    name = repo_id or out.resolve().name
    evaluated = {
        "task_type": "image-classification",
        "dataset_type": public_id,
        "dataset_name": public_id,
        "dataset_split": "validation",
        "metric_type": "accuracy",
        "metric_value": results["eval_accuracy"],
        "metric_name": f"Accuracy (val, {evaluated_model(trained, adapter)})",
    }
    data = ModelCardData(
        model_name=name,
        base_model=None if is_local(base) else base,
        library_name="peft" if (trained or adapter) else "transformers",
        license=LICENSE,
        datasets=[public_id] if public_id else None,
        pipeline_tag="zero-shot-image-classification",
        tags=["clip", "image-classification", "transformers"]
        + (["lora", "peft"] if (trained or adapter) else [])
        + ([source["dataset"]] if source["kind"] == "fastai_archive" else []),
        eval_results=[EvalResult(**evaluated)] if public_id else None,  # model-index needs a public dataset
        class_names=class_names,
        prompt_templates=templates,
    )
    base_text = f"`{base}`" if not is_local(base) else f"a local checkpoint, `{Path(base).name}`"
    adapter_ref = repo_id if trained else (adapter if adapter and not is_local(adapter) else None)
    if trained:
        title = (
            f"A LoRA adapter for CLIP ({base_text}) that classifies images into {len(class_names)} classes"
        )
        what = f"Trained on {data_text(source)} with `transformers.Trainer` and `peft`."
    else:
        scored = (
            f"the adapter `{adapter_ref or Path(adapter).name}`" if adapter else "the base model, zero-shot"
        )
        title = f"An evaluation of {scored} on CLIP ({base_text}): {len(class_names)} classes"
        what = f"Evaluated on {data_text(source)}; nothing was trained in this run."
    training = ""
    if trained:
        params = ""
        if "trainable_params" in results:
            params = (
                f"Trainable parameters: {results['trainable_params']:,} of {results['total_params']:,} "
                f"({100 * results['trainable_params'] / results['total_params']:.3f}%).\n"
            )
        training = f"## Training hyper-parameters\n\n{hyper_parameter_table(config)}\n{params}\n"
    reproduce = provenance_table(config, trained)
    reproducibility = (
        f"## Reproducibility\n\n{reproduce}\nTwo runs side by side: `clip-lora compare RUN_A RUN_B`.\n\n"
        if reproduce
        else ""
    )
    uses_adapter = trained or bool(adapter)
    temperature = read_temperature(out) if trained else None  # the T predict applies, in the snippet too
    base_ref = BASE_PLACEHOLDER if is_local(base) else base
    filled = [f"`{BASE_PLACEHOLDER}` (the base CLIP: `{Path(base).name}`)"] if is_local(base) else []
    if uses_adapter and not adapter_ref:
        filled.append(f"`{ADAPTER_PLACEHOLDER}` (the folder holding adapter_config.json)")
    fill_in = f"Replace {' and '.join(filled)} before running it.\n" if filled else ""
    if uses_adapter:
        cli = f"clip-lora predict --adapter_name_or_path {adapter_ref or ADAPTER_PLACEHOLDER} image.jpg"
    else:
        cli = (
            f'clip-lora predict --model_name_or_path {base_ref} --labels "{",".join(class_names)}" image.jpg'
        )
    body = f"""
# {name}

{title}, by comparing each image with class prompts such as `{templates[0]}` ({len(templates)} template(s) per
class). {what}

## Results

{_results_table(results, trained, adapter)}
Val: {report["total"]} images. Numbers from `all_results.json` of the run.

## Per-class results (val, {evaluated_model(trained, adapter)})

{report_to_markdown(report)}
{calibration_section(out)}{control_section(out)}## How the {"adapter was selected" if trained else "evaluation was made"}

{selection_text(config, state if trained else None, results)}

{training}{reproducibility}## Use it

Classifies `image.jpg` with plain {"`peft` + " if uses_adapter else ""}`transformers`.
{fill_in}
{snippet(base_ref, (adapter_ref or ADAPTER_PLACEHOLDER) if uses_adapter else None, class_names, templates, temperature)}

Or with this project: `{cli}`.
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
