"""The entry's selection and evaluation steps, by the image ids each evaluation saw: every per-epoch evaluation (the
one that picks the epoch) and the reported dev metrics see exactly the dev split, never a val image; the zero-shot
baseline and the final evaluation see exactly val; --seed and --dev_split_ratio decide the dev split."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from safetensors.torch import load_file

import train_clip_lora
from clip_lora import card_text
from clip_lora.data import load_splits
from clip_lora.testing_utils import make_image_folder
from clip_lora.trainer import ClipLoraTrainer
from testing_utils import WNIDS, feed_dev_evaluations, make_tiny_trainer, small_argv, smoke_argv

SEED, RATIO, EPOCHS = 3, 0.15, 2


def _ids(dataset) -> list[str]:
    # The splits carry a pixel transform by now; the raw rows still hold image_id.
    return list(dataset.with_format(None)["image_id"])


@pytest.fixture(scope="module")
def recorded_run(tiny_model_dir, image_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("selection") / "run"
    seen: list[tuple[str, str, list[str]]] = []
    evaluate, predict = ClipLoraTrainer.evaluate, ClipLoraTrainer.predict

    def recording_evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        seen.append(("evaluate", metric_key_prefix, _ids(dataset)))
        return evaluate(self, eval_dataset, ignore_keys, metric_key_prefix)

    def recording_predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        seen.append(("predict", metric_key_prefix, _ids(test_dataset)))
        return predict(self, test_dataset, ignore_keys, metric_key_prefix)

    argv = smoke_argv(
        tiny_model_dir,
        image_root,
        out,
        *("--num_train_epochs", str(EPOCHS), "--max_train_samples", "40", "--seed", str(SEED)),
        *("--dev_split_ratio", str(RATIO), "--save_total_limit", "1"),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", out.parent / "hf-datasets")
        patch.setattr(ClipLoraTrainer, "evaluate", recording_evaluate)
        patch.setattr(ClipLoraTrainer, "predict", recording_predict)
        results = train_clip_lora.main(argv)
    expected = load_splits(
        "imagenette", data_dir=str(image_root), dev_split_ratio=RATIO, seed=SEED, download=False
    )
    return out, results, seen, expected


def test_every_per_epoch_evaluation_saw_exactly_the_dev_ids(recorded_run):
    _, _, seen, expected = recorded_run
    dev, val = list(expected["dev"]["image_id"]), list(expected["val"]["image_id"])
    assert len(dev) == round(RATIO * 200) and not set(dev) & set(val)
    per_epoch = [ids for kind, prefix, ids in seen if kind == "evaluate" and prefix == "eval"]
    assert len(per_epoch) == EPOCHS
    assert all(ids == dev for ids in per_epoch)
    reported_dev = [ids for kind, prefix, ids in seen if prefix == "dev"]
    assert reported_dev == [dev]


def test_baseline_and_final_evaluation_saw_exactly_val(recorded_run):
    _, _, seen, expected = recorded_run
    val = list(expected["val"]["image_id"])
    # The dev prediction (its logits fit the temperature) saw dev: checked in the test above.
    predicted = {prefix: ids for kind, prefix, ids in seen if kind == "predict" and prefix != "dev"}
    assert predicted == {"zero_shot": val, "eval": val}


def test_report_and_saved_adapter_are_the_selected_epochs(recorded_run):
    out, results, _, _ = recorded_run
    state = json.loads((out / "trainer_state.json").read_text())
    dev_accuracies = [e["eval_accuracy"] for e in state["log_history"] if "eval_accuracy" in e]
    assert len(dev_accuracies) == EPOCHS and results["dev_accuracy"] == pytest.approx(max(dev_accuracies))
    assert (out / "adapter_model.safetensors").is_file()
    report = json.loads((out / "classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(results["eval_accuracy"])


# ---------------------------------------------------------------- ties: the rule, in Trainer and on the card
# (dev accuracy per epoch, dev loss per epoch, the epoch the rule keeps, the card's phrase for it)
TIES = {
    "two tied, the later lower": ([0.5, 1.0, 1.0, 0.9], [0.9, 0.4, 0.2, 0.3], 3, "epochs 2, 3 tied"),
    "the demo's five tied": (
        [0.5, 0.85, 1.0, 1.0, 0.95, 1.0, 1.0, 1.0],
        [1.2, 0.8, 0.36, 0.3, 0.4, 0.2, 0.12, 0.09],
        8,
        "epochs 3, 4, 6-8 tied",
    ),
    "lowest in the middle": ([1.0, 1.0, 1.0, 1.0], [0.3, 0.1, 0.2, 0.15], 2, "epochs 1-4 tied"),
    "both tied: the first": (
        [0.8, 1.0, 1.0],
        [0.5, 0.2, 0.2],
        2,
        "epochs 2, 3 tied at 1.0000 dev accuracy and on",
    ),
}


def _reference_epoch(accuracies, losses) -> int:
    """Accuracy first, then the lower loss, then the earlier epoch."""
    return min(range(len(accuracies)), key=lambda i: (-accuracies[i], losses[i], i)) + 1


@pytest.fixture(scope="module")
def tiny_trainer(tiny_model_dir, tmp_path_factory):
    return make_tiny_trainer(tiny_model_dir, tmp_path_factory.mktemp("ties"), save_strategy="epoch")


@pytest.mark.parametrize(("accuracies", "losses", "kept", "phrase"), TIES.values(), ids=TIES)
def test_a_tie_on_dev_accuracy_goes_to_the_lower_dev_loss_in_trainer_and_on_the_card(
    tiny_trainer, accuracies, losses, kept, phrase
):
    assert kept == _reference_epoch(accuracies, losses)
    state = feed_dev_evaluations(tiny_trainer, accuracies, losses)
    assert state["best_global_step"] == 12 * kept and state["best_metric"] == max(accuracies)
    config = {
        "dev_split_ratio": 0.05,
        "seed": 42,
        "metric_for_best_model": "accuracy",
        "greater_is_better": True,
    }
    text = card_text.selection_text(config, state, {"eval_accuracy": 0.99})
    assert f"of {len(accuracies)} evaluations, {phrase}" in text
    tied_losses = [loss for acc, loss in zip(accuracies, losses, strict=True) if acc == max(accuracies)]
    if len(set(tied_losses)) > 1:  # the card names the kept epoch and the loss that chose it
        assert (
            f"tied at 1.0000 dev accuracy; epoch {kept} kept: the lowest dev loss, {losses[kept - 1]:.4f}"
            in text
        )
        assert f"ranged to {max(tied_losses):.4f}" in text
    else:
        assert f"the first, epoch {kept}, was kept" in text


def test_accuracy_comes_first_and_a_loss_metric_is_broken_by_accuracy(tiny_trainer):
    # A strictly better accuracy wins even with a higher loss.
    assert feed_dev_evaluations(tiny_trainer, [0.9, 1.0], [0.1, 0.5])["best_global_step"] == 24
    # Selecting on the loss: equal losses go to the higher accuracy; a lower loss wins whatever the accuracy.
    state = feed_dev_evaluations(tiny_trainer, [0.9, 0.8, 0.95, 0.5], [0.3, 0.2, 0.2, 0.25], metric="loss")
    assert state["best_global_step"] == 36 and state["best_metric"] == 0.2
    config = {"metric_for_best_model": "loss", "greater_is_better": False, "seed": 1}
    text = card_text.selection_text(config, state, {})
    assert "epochs 2, 3 tied at 0.2000 dev loss; epoch 3 kept: the highest dev accuracy, 0.9500" in text


def test_a_run_from_before_the_tie_breaker_is_described_as_it_was_made():
    """An old trainer_state (the first of a tie kept, a later one had a lower loss) is not re-described."""
    history = [
        {"epoch": float(e), "step": 10 * e, "eval_accuracy": a, "eval_loss": loss}
        for e, a, loss in ((1, 1.0, 0.3), (2, 1.0, 0.1))
    ]
    state = {"log_history": history, "best_metric": 1.0, "best_global_step": 10}
    text = card_text.selection_text({"seed": 0}, state, {})
    assert "epochs 1, 2 tied at 1.0000 dev accuracy; the first was kept (Trainer replaces" in text


def test_a_run_keeps_restores_and_never_rotates_out_the_tie_broken_checkpoint(tiny_model_dir, tmp_path):
    """Four one-step epochs tied at dev accuracy 1.0 with dev losses 0.3, 0.1, 0.2, 0.15: epoch 2 is the best
    checkpoint, survives rotation (save_total_limit 2 keeps the best and the last), and is the adapter saved."""
    losses = [0.3, 0.1, 0.2, 0.15]
    scripted, original = list(losses), ClipLoraTrainer.evaluation_loop

    def tied_evaluation_loop(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        if (
            kwargs.get("metric_key_prefix") == "eval" and scripted
        ):  # the per-epoch dev evaluations (val: after)
            output.metrics.update(eval_accuracy=1.0, eval_loss=scripted.pop(0))
        return output

    data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=6, val_per_class=2, size=16)
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
        patch.setattr(ClipLoraTrainer, "evaluation_loop", tied_evaluation_loop)
        train_clip_lora.main(small_argv(tiny_model_dir, data, out, "--num_train_epochs", "4"))
    state = json.loads((out / "trainer_state.json").read_text())
    assert (
        not scripted
        and state["best_global_step"] == 2
        and state["best_model_checkpoint"].endswith("checkpoint-2")
    )
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    saved = load_file(out / "adapter_model.safetensors")
    for step, same in ((2, True), (4, False)):
        other = load_file(out / f"checkpoint-{step}" / "adapter_model.safetensors")
        assert all(torch.equal(saved[k], other[k]) for k in saved) == same, step
    assert (
        "epochs 1-4 tied at 1.0000 dev accuracy; epoch 2 kept: the lowest dev loss, 0.1000"
        in (out / "README.md").read_text()
    )
