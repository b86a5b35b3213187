"""arguments: the seed's defaults, recipes (YAML/JSON) with overrides, and one-line errors for bad values."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from clip_lora import validation
from clip_lora.arguments import ArgumentError, parse_args
from clip_lora.selection import SelectionRule
from testing_utils import ROOT


def test_defaults_are_the_seed_experiment():
    model, data, lora, train = parse_args([])
    assert model.model_name_or_path == "openai/clip-vit-base-patch16"
    assert data.dataset_name == "imagenette" and data.prompt_template == "a photo of a {}"
    assert (lora.lora_r, lora.lora_alpha, lora.lora_dropout, lora.lora_towers) == (16, 32, 0.1, "both")
    assert lora.target_module_list == ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert (train.num_train_epochs, train.per_device_train_batch_size, train.learning_rate) == (10, 32, 1e-4)
    assert train.do_train and train.do_eval and train.load_best_model_at_end
    assert train.eval_strategy == "epoch" and train.save_strategy == "epoch"
    assert train.metric_for_best_model == "accuracy" and train.remove_unused_columns is False
    assert train.label_names == ["labels"]


def test_seed_recipe_matches_defaults_where_they_overlap():
    _, _, lora, train = parse_args([str(ROOT / "clip_lora" / "recipes" / "imagenette_vitb16.yaml")])
    assert (lora.lora_r, lora.lora_alpha, train.num_train_epochs, train.learning_rate) == (16, 32, 10, 1e-4)


def test_recipe_then_flags_override(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(
        json.dumps({"lora_r": 4, "lora_target_modules": ["q_proj", "v_proj"], "do_train": False})
    )
    _, _, lora, train = parse_args([str(recipe), "--lora_r", "8"])
    assert lora.lora_r == 8 and lora.target_module_list == ["q_proj", "v_proj"] and train.do_train is False


def test_any_training_arguments_flag_works():
    *_, train = parse_args(
        ["--gradient_accumulation_steps", "4", "--weight_decay", "0.05", "--bf16", "false"]
    )
    assert train.gradient_accumulation_steps == 4 and train.weight_decay == 0.05


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lora_r", "0"], "--lora_r 0 must be a positive integer"),
        (["--lora_towers", "visoin"], "--lora_towers 'visoin' is not one of both, vision, text"),
        (["--loss", "hinge"], "--loss 'hinge' is not one of"),
        (["--prompt_template", "a photo"], "has no '{}'"),
        (["--dev_split_ratio", "0"], "--dev_split_ratio 0.0 must be in"),
        (["--no_such_flag", "1"], "unknown argument"),
    ],
)
def test_bad_values_are_one_line_errors(argv, message):
    with pytest.raises(
        ArgumentError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")
    ):
        parse_args(argv)


def test_bad_recipes(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("lora_r: [1,\n")
    with pytest.raises(ArgumentError, match="cannot read recipe"):
        parse_args([str(broken)])
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("lora_rank: 4\n")
    with pytest.raises(ArgumentError, match="unknown key .lora_rank. .did you mean lora_r"):
        parse_args([str(unknown)])


@pytest.mark.parametrize(
    ("metric", "bare"),
    [
        ("accuracy", "accuracy"),
        ("eval_accuracy", "accuracy"),
        ("eval_macro_f1", "macro_f1"),
        ("eval_loss", "loss"),
    ],
)
def test_the_metric_for_the_best_model_is_named_with_or_without_eval(metric, bare, tmp_path):
    """Trainer's own spelling (eval_accuracy) is accepted by the full parse and the quick check alike."""
    training_args = parse_args(["--metric_for_best_model", metric, "--output_dir", str(tmp_path / "o")])[3]
    rule = SelectionRule.of(training_args.metric_for_best_model, training_args.greater_is_better)
    assert rule.metric == bare and rule.greater_is_better is (bare != "loss")
    validation._check_metric(
        SimpleNamespace(metric_for_best_model=metric), known=["accuracy", "macro_f1", "loss"]
    )
    with pytest.raises(ArgumentError, match="'eval_top5' is not a metric the evaluation reports"):
        parse_args(["--metric_for_best_model", "eval_top5", "--output_dir", str(tmp_path / "o")])
