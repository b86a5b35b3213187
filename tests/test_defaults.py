"""Every seed default in one table, against the seed recipe (clip_lora/recipes/imagenette_vitb16.yaml): what running
with no argument does, and the LoRA those defaults build on the ViT-B/16 shape (1,966,080 trainable parameters)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
import yaml
from transformers import CLIPModel

from clip_lora import data
from clip_lora.arguments import parse_args
from clip_lora.modeling import apply_lora, count_parameters, load_adapter, load_clip
from clip_lora.testing_utils import vit_b16_clip_config
from testing_utils import ROOT, doc_page

RECIPE = yaml.safe_load((ROOT / "clip_lora" / "recipes" / "imagenette_vitb16.yaml").read_text())

# (argument group, name, seed value); the recipe must agree wherever it names the argument.
SEED_DEFAULTS = [
    ("model", "model_name_or_path", "openai/clip-vit-base-patch16"),
    ("data", "dataset_name", "imagenette"),
    ("data", "imagenette_size", "full"),
    ("data", "prompt_template", "a photo of a {}"),
    ("data", "prompt_templates", "single"),
    ("data", "dev_split_ratio", 0.05),
    ("data", "max_train_samples", None),
    ("data", "max_eval_samples", None),
    ("data", "shots_per_class", None),
    ("lora", "lora_r", 16),
    ("lora", "lora_alpha", 32),
    ("lora", "lora_dropout", 0.1),
    ("lora", "lora_target_modules", "q_proj,k_proj,v_proj,out_proj"),
    ("lora", "lora_towers", "both"),
    ("lora", "loss", "contrastive"),
    ("train", "num_train_epochs", 10),
    ("train", "per_device_train_batch_size", 32),
    ("train", "per_device_eval_batch_size", 256),  # an eval batch changes no number
    ("train", "learning_rate", 1e-4),
    ("train", "seed", 42),
    ("train", "eval_strategy", "epoch"),
    ("train", "save_strategy", "epoch"),
    ("train", "load_best_model_at_end", True),
    ("train", "metric_for_best_model", "accuracy"),
    ("train", "greater_is_better", True),
    ("train", "do_train", True),
    ("train", "do_eval", True),
    ("train", "output_dir", "runs/clip-lora-imagenette"),
]
RECIPE_OVERRIDES: set[str] = set()
GROUPS = ("model", "data", "lora", "train")


@pytest.fixture(scope="module")
def defaults():
    return dict(zip(GROUPS, parse_args([]), strict=True))


@pytest.mark.parametrize(("group", "name", "value"), SEED_DEFAULTS, ids=[row[1] for row in SEED_DEFAULTS])
def test_seed_default(defaults, group, name, value):
    got = getattr(defaults[group], name)
    assert getattr(got, "value", got) == value  # strategies are enums whose value is the flag's text
    if name in RECIPE and name not in RECIPE_OVERRIDES:
        assert RECIPE[name] == value or str(RECIPE[name]) == str(value)


def test_default_lora_on_vit_b16_shape(defaults):
    lora = defaults["lora"]
    with torch.device("meta"):  # the real shape without 600 MB of weights
        model = apply_lora(
            CLIPModel(vit_b16_clip_config()),
            lora.lora_r,
            lora.lora_alpha,
            lora.lora_dropout,
            lora.target_module_list,
            lora.lora_towers,
        )
    assert count_parameters(model)[0] == 1_966_080
    config = model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.1)
    adapted = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"q_proj", "k_proj", "v_proj", "out_proj"}


def test_a_loaded_adapter_trains_only_when_asked(tiny_model_dir, tmp_path):
    model, _ = load_clip(str(tiny_model_dir))
    apply_lora(model, 4, 8, 0.0, ["q_proj", "v_proj"]).save_pretrained(tmp_path / "adapter")
    for trainable in (True, False):
        base, _ = load_clip(str(tiny_model_dir))
        loaded = load_adapter(base, str(tmp_path / "adapter"), is_trainable=trainable)
        lora_grads = {p.requires_grad for n, p in loaded.named_parameters() if "lora_" in n}
        assert lora_grads == {trainable}
        assert count_parameters(loaded)[0] == (
            sum(p.numel() for n, p in loaded.named_parameters() if "lora_" in n) if trainable else 0
        )


# ---------------------------------------------------------------- docs/evidence.md: "The seed vs this recipe"
SEED_TABLE_HEADER = "| setting | flag | the seed | this recipe | difference: why |"
KINDS = ("same", "deliberate", "unstated")


def _readme_seed_table() -> list[dict]:
    """docs/evidence.md's table rows: flag, the seed's value (None: unstated or not a value), ours, the kind of difference."""
    lines = doc_page("evidence").splitlines()
    start = lines.index(SEED_TABLE_HEADER) + 2
    rows = []
    for line in itertools.takewhile(lambda text: text.startswith("|"), lines[start:]):
        _, flag, seed, ours, why = (cell.strip() for cell in line.strip("|").split(" | "))
        rows.append(
            {
                "flag": re.match(r"`([^`]+)`", flag)[1],
                "seed": m[1] if (m := re.fullmatch(r"`([^`]+)`", seed)) else None,
                "seed_text": seed,
                "ours": re.fullmatch(r"`([^`]+)`", ours)[1],
                "kind": why.split(":")[0],
            }
        )
    return rows


def _recipe_value(flag: str, parsed: dict):
    """The recipe's value of a flag, as the run sees it (precision: from the accelerate config the recipe runs with)."""
    if flag == "mixed_precision":
        return yaml.safe_load((ROOT / "accelerate_config.yaml").read_text())["mixed_precision"]
    value = parsed[flag]
    return getattr(value, "value", value)


def _same(text: str, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return text == str(value)
    return float(text) == float(value)


def test_evidence_seed_table_matches_the_parsed_recipe():
    groups = parse_args([str(ROOT / "clip_lora" / "recipes" / "imagenette_vitb16.yaml")])
    parsed = {k: v for group in groups for k, v in vars(group).items()}
    rows = _readme_seed_table()
    flags = [row["flag"] for row in rows]
    assert len(flags) == len(set(flags)) and len(rows) >= 20
    # Every value the recipe sets is in the table (output_dir names a folder, not a hyper-parameter).
    assert set(RECIPE) - {"output_dir"} <= set(flags)
    for row in rows:
        flag, kind = row["flag"], row["kind"]
        assert kind in KINDS, row
        value = _recipe_value(flag, parsed)
        if flag == "data_dir":  # the folder the archive extracts into, under data_dir
            archive = data.IMAGENETTE_ARCHIVES[parsed["imagenette_size"]][0]
            value = str(Path(value) / archive.rsplit("/", 1)[-1].removesuffix(".tgz"))
            assert row["ours"] == parsed["data_dir"]
        else:
            assert _same(row["ours"], value), (flag, row["ours"], value)
        if kind == "same":
            assert row["seed"] is not None and _same(row["seed"], value), (flag, row["seed"], value)
        elif kind == "unstated":
            assert row["seed_text"] == "unstated", row
        else:  # deliberate: the seed did something else, said in words or as a value
            assert row["seed_text"] != "unstated" and not (row["seed"] and _same(row["seed"], value)), row
    deliberate = {row["flag"] for row in rows if row["kind"] == "deliberate"}
    assert deliberate == {
        "dev_split_ratio",
        "metric_for_best_model",
    }  # selection only: everything else is the seed's
    assert {"optim", "lr_scheduler_type", "weight_decay", "max_grad_norm", "mixed_precision", "loss"} <= {
        row["flag"] for row in rows if row["kind"] == "unstated"
    }
