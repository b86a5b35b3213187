"""The model card's "Beyond the task" section, read from the run's control.json only."""

from __future__ import annotations

from pathlib import Path

from clip_lora import artifacts


def control_section(output_dir: str | Path) -> str:
    """'## Beyond the task' (control accuracy zero-shot -> fine-tuned, paired test); '' without control.json."""
    path = Path(output_dir) / artifacts.CONTROL_JSON
    if not path.is_file():
        return ""
    c = artifacts.read_json(path)
    test = c["mcnemar"]
    names = ", ".join(c["class_names"])
    text = (
        f"## Beyond the task\n\nA control set of {c['images']} images of {len(c['class_names'])} classes the adapter "
        f"was never trained on ({names}; their own label space, the same prompt templates). LoRA adapts the text "
        f"tower too, so these classes' embeddings move with it.\n\n"
        f"| control set | accuracy |\n|---|---:|\n"
        f"| zero-shot (base model) | {c['zero_shot_accuracy']:.4f} |\n"
        f"| fine-tuned (adapter) | {c['eval_accuracy']:.4f} |\n"
        f"| difference | {c['difference']:+.4f} |\n\n"
        f"Paired on the same {test['n']} images (exact McNemar): right zero-shot and wrong fine-tuned "
        f"{test['b']}, wrong zero-shot and right fine-tuned {test['c']}, two-sided p = {test['p_value']:.4g}.\n"
    )
    if c.get("wise_ft"):
        per_alpha = ", ".join(f"{e['alpha']:g}: {e['accuracy']:.4f}" for e in c["wise_ft"])
        text += f"\nControl accuracy per WiSE-FT alpha ({per_alpha}).\n"
    if (Path(output_dir) / artifacts.WISE_FT_TRADEOFF_PNG).is_file():
        text += f"Task (val) against control accuracy per alpha, the trade-off to pick from: `{artifacts.WISE_FT_TRADEOFF_PNG}`.\n"
    return text + "\n"
