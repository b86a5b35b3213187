"""Selection and the model card on inputs of every shape: the rule against a plain sort, the card's tie sentence for
ties of 2..n evaluations (whole and fractional epochs, selecting on accuracy or on the loss, a run from before the
tie-breaker), and custom prompt templates on the card as `clip-lora predict` reads them back.

Run: python -m pytest tests/test_card_selection.py -q
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_lora import artifacts, card_text, model_card
from clip_lora.selection import SelectionRule
from metrics import classification_report, save_report

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
BEST = {"accuracy": 1.0, "loss": 0.05}  # the best value of each metric; the others are worse
WORSE = {"accuracy": [0.8, 0.9], "loss": [0.2, 0.4]}
OTHER = {"accuracy": "loss", "loss": "accuracy"}  # the tie-breaker of each metric


@st.composite
def tied_runs(draw):
    """(metric, evaluations, epochs, tied indices, run from before the tie-breaker?): 1..n evaluations tie."""
    n = draw(st.integers(1, 10))
    metric = draw(st.sampled_from(["accuracy", "loss"]))
    tied = sorted(draw(st.sets(st.integers(0, n - 1), min_size=1)))
    evaluations = []
    for i in range(n):
        value = BEST[metric] if i in tied else draw(st.sampled_from(WORSE[metric]))
        breaker = draw(st.sampled_from([0.1, 0.2, 0.3] if metric == "accuracy" else [0.85, 0.9, 0.95]))
        evaluations.append({f"eval_{metric}": value, f"eval_{OTHER[metric]}": breaker})
    every = draw(st.sampled_from([1, 0.5, 0.25]))  # evaluations per epoch: 1, 2 or 4
    return metric, evaluations, [(i + 1) * every for i in range(n)], tied, draw(st.booleans())


def reference_kept(metric: str, evaluations: list[dict], tied: list[int]) -> int:
    """Among the tied: the better tie-breaker (lower loss / higher accuracy), then the earlier."""
    sign = 1 if metric == "accuracy" else -1  # the loss breaks ties upwards in accuracy: sort its negative
    return min(tied, key=lambda i: (sign * evaluations[i][f"eval_{OTHER[metric]}"], i))


def reference_epochs_text(epochs: list[float]) -> str:
    """Runs of 3+ consecutive whole epochs as 'a-b', the rest one by one: grouped by epoch minus position."""
    keys = [e - i if float(e).is_integer() else ("fraction", i) for i, e in enumerate(epochs)]
    groups = [[e for _, e in g] for _, g in itertools.groupby(zip(keys, epochs, strict=True), lambda p: p[0])]
    words = [[f"{g[0]:g}-{g[-1]:g}"] if len(g) >= 3 else [f"{e:g}" for e in g] for g in groups]
    return ", ".join(w for group in words for w in group)


@SETTINGS
@given(tied_runs())
def test_the_rule_keeps_what_a_plain_sort_keeps(case):
    metric, evaluations, _, tied, _ = case
    assert SelectionRule.of(metric).best(evaluations) == reference_kept(metric, evaluations, tied)


@SETTINGS
@given(tied_runs())
def test_the_card_names_every_tied_epoch_and_what_broke_the_tie(case):
    metric, evaluations, epochs, tied, before_tie_breaker = case
    kept = tied[0] if before_tie_breaker else reference_kept(metric, evaluations, tied)
    log = []
    for i, evaluation in enumerate(evaluations):  # Trainer logs the training loss, then the dev evaluation
        log.append(
            {"loss": 0.5, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": epochs[i], "step": 10 * (i + 1)}
        )
        log.append({**evaluation, "epoch": epochs[i], "step": 10 * (i + 1)})
    log.append({"train_runtime": 9.0, "train_loss": 0.4, "epoch": epochs[-1], "step": 10 * len(epochs)})
    state = {"log_history": log, "best_metric": BEST[metric], "best_global_step": 10 * (kept + 1)}
    config = {"dev_split_ratio": 0.05, "seed": 3, "metric_for_best_model": metric}
    text = card_text.selection_text({**config, "greater_is_better": metric != "loss"}, state, {})
    head = f"of {len(epochs)} evaluations, epochs {reference_epochs_text([epochs[i] for i in tied])} tied at "
    head += f"{BEST[metric]:.4f} dev {metric}"
    breakers = [evaluations[i][f"eval_{OTHER[metric]}"] for i in tied]
    if len(tied) == 1:
        expected = f"of {len(epochs)} evaluations, epoch {epochs[kept]:g} had the best dev {metric} ("
        expected += f"{BEST[metric]:.4f}) and was kept."
    elif kept != reference_kept(metric, evaluations, tied):  # Trainer kept the first: said as it was made
        expected = (
            f"{head}; the first was kept (Trainer replaces its best checkpoint only on a strictly better"
        )
    elif len(set(breakers)) == 1:
        expected = f"{head} and on dev {OTHER[metric]}; the first, epoch {epochs[kept]:g}, was kept."
    else:
        which, worst = ("lowest", max(breakers)) if metric == "accuracy" else ("highest", min(breakers))
        expected = (
            f"{head}; epoch {epochs[kept]:g} kept: the {which} dev {OTHER[metric]}, "
            f"{evaluations[kept][f'eval_{OTHER[metric]}']:.4f} (the tied epochs' dev {OTHER[metric]} ranged "
            f"to {worst:.4f})."
        )
    assert expected in text, (expected, text)


@pytest.mark.parametrize(
    ("epochs", "text"),
    [
        ([0.5, 1, 2, 3], "0.5, 1-3"),  # evaluated every half epoch: a fraction, then three whole epochs
        ([1, 2, 3, 5, 6], "1-3, 5, 6"),
        ([1, 1.5, 2, 2.5, 3], "1, 1.5, 2, 2.5, 3"),
        ([4], "4"),
        ([2, 3, 4, 5, 6, 7, 8, 9, 10, 11], "2-11"),
    ],
)
def test_tied_epochs_are_written_as_runs(epochs, text):
    assert card_text._epochs(epochs) == reference_epochs_text(epochs) == text


def test_a_state_without_a_best_step_says_only_that_the_best_was_kept():
    """An older trainer_state.json (or a run that saved no checkpoint) names no best step."""
    log = [{"eval_accuracy": a, "eval_loss": 0.1, "epoch": e, "step": 5 * e} for e, a in ((1, 0.9), (2, 1.0))]
    text = card_text.selection_text({"seed": 0}, {"log_history": log, "best_metric": 1.0}, {})
    assert "of 2 evaluations, the best dev evaluation was kept." in text
    chosen = card_text.selection({"log_history": log, "best_metric": 1.0, "best_global_step": 10}, "accuracy")
    assert (chosen["kept_epoch"], chosen["tied_epochs"], chosen["by_rule"]) == (2, [2], True)


def test_a_missing_or_nan_metric_never_wins_and_a_full_tie_keeps_the_first():
    rule = SelectionRule.of("accuracy")
    nan = float("nan")
    runs = [
        {"eval_loss": 0.1},
        {"eval_accuracy": nan, "eval_loss": 0.1},
        {"eval_accuracy": 0.5, "eval_loss": 0.3},
    ]
    assert rule.best(runs) == 2 and rule.best(runs[:2]) is None
    tie = [{"eval_accuracy": 1.0, "eval_loss": 0.2}, {"eval_accuracy": 1.0, "eval_loss": 0.2}]
    assert (
        rule.best(tie) == 0
        and rule.best([{"eval_accuracy": 1.0}, {"eval_accuracy": 1.0, "eval_loss": 0}]) == 0
    )
    assert SelectionRule.of("eval_accuracy", greater_is_better=False).best(tie[:1] + runs[2:]) == 1


# ---------------------------------------------------------------- custom prompt templates on the card
def write_run(out, config: dict) -> None:
    """The artifacts a card is built from, for a 3-class evaluation-only run (no model needed)."""
    names = ["tench", "church", "golf ball"]
    report = classification_report([0, 1, 2, 2], [0, 1, 2, 1], names)
    save_report(
        report, out, split="val", model="base model, zero-shot (evaluation only)"
    )  # as a run writes it
    artifacts.write_json(out / artifacts.ALL_RESULTS, {"eval_accuracy": 0.75, "zero_shot_accuracy": 0.5})
    base = {"model_name_or_path": "openai/clip-vit-base-patch16", "do_train": False, "seed": 1}
    artifacts.write_json(out / artifacts.RUN_CONFIG, {**base, "data_source": {"kind": "folder"}, **config})


@pytest.mark.parametrize(
    ("config", "templates"),
    [
        ({"prompt_template": "itap of a {}."}, ["itap of a {}."]),
        ({"prompt_template": "a {} photo", "prompt_templates": "single"}, ["a {} photo"]),
        ({"prompt_templates": "FILE"}, ["a photo of the {}.", "a blurry photo of a {}.", "art of the {}."]),
        ({}, ["a photo of a {}"]),  # an older run that recorded neither: the default it ran with
    ],
    ids=["custom template", "custom template, single", "template file", "recorded none"],
)
def test_the_card_carries_the_runs_templates_and_predict_reads_them_back(tmp_path, config, templates):
    if config.get("prompt_templates") == "FILE":
        path = tmp_path / "templates.txt"
        path.write_text("# three templates\n" + "\n".join(templates) + "\n\n")
        config = {**config, "prompt_templates": str(path), "prompt_template": "unused {}"}
    out = tmp_path / "run"
    out.mkdir()
    write_run(out, config)
    card = model_card.build_model_card(out)
    assert card.data.prompt_templates == templates
    assert f"class prompts such as `{templates[0]}` ({len(templates)} template(s) per" in card.text
    assert f"templates = {json.dumps(templates)}" in card.text  # the snippet scores with them
    model_card.write_model_card(out)
    assert model_card.label_info(str(out)) == (["tench", "church", "golf ball"], templates)
