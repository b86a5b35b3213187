"""lean_step.py and device_inputs.py: the training step without host work it does not need, and the same numbers.

- a step that does not log reads nothing back from the device (counted like bench/host_step.py: no timing);
- the training step (model forward + the loss) compiles as one graph, with no graph break;
- the compiled step trains what the eager one trains; frozen weights stored in bf16 change no number;
- the text tower's prepared attention mask and the device-side pixel normalisation give the same values.

Run: python -m pytest tests/test_lean_step.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import TrainerCallback

from clip_lora import lean_step
from clip_lora.device_inputs import DeviceInputs
from clip_lora.lean_step import reads_device
from clip_lora.loss import class_embeddings, clip_class_loss
from collator import ClipClassificationCollator
from testing_utils import make_tiny_trainer


class SyncCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.syncs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if reads_device(func, args):
            self.syncs.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class CountSteps(TrainerCallback):
    """Dispatched read-backs from one step's start to the next's (the forward, backward, clipping, optimizer,
    callbacks, and fetching the next batch), for the steps in `counted`."""

    def __init__(self, counted):
        self.counted, self.mode, self.per_step = counted, None, []

    def on_step_begin(self, args, state, control, **kwargs):
        self._stop()
        if state.global_step in self.counted:
            self.mode = SyncCounter()
            self.mode.__enter__()

    def on_train_end(self, args, state, control, **kwargs):
        self._stop()

    def _stop(self):
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.per_step.append(self.mode.syncs)
            self.mode = None


@pytest.mark.parametrize("loss", ["contrastive", "ce"])
def test_a_step_that_does_not_log_reads_nothing_back_from_the_device(tiny_model_dir, tmp_path, loss):
    # Before: 8 a step (the health check's 4, Trainer's NaN filter's 2, the text mask's 1, unique() in the loss).
    trainer = make_tiny_trainer(
        tiny_model_dir, tmp_path, num_images=40, max_steps=4, logging_steps=100, bf16=True, max_grad_norm=1.0
    )
    trainer.loss_kind = loss
    # Rows as the image transform gives them (numpy pixels, int labels): a tensor label would be read by the
    # collator on the host, which is not a device read.
    trainer.train_dataset = [
        {"pixel_values": row["pixel_values"].numpy(), "labels": int(row["labels"])}
        for row in trainer.train_dataset
    ]
    counter = CountSteps(counted={1, 2})
    trainer.add_callback(counter)
    trainer.train()
    assert counter.per_step == [[], []]


@pytest.mark.parametrize("unreadable", [0, 3])
def test_an_evaluation_batch_reads_nothing_back_from_the_device(tiny_model_dir, tmp_path, unreadable):
    # Before: 2 a batch (the placeholder rows taken out and put back by boolean indexing, each counting the mask
    # on the host), whether or not the batch held a placeholder.
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path, num_images=8)
    rows = [dict(trainer.train_dataset[i]) for i in range(8)]
    for row in rows[:unreadable]:  # images that became unreadable after the check: placeholder rows
        row["pixel_values"] = None
    batch = trainer.data_collator(rows)
    trainer.model.eval()
    trainer.prediction_step(trainer.model, batch, prediction_loss_only=False)  # class prompts encoded
    with SyncCounter() as counter:
        loss, logits, labels = trainer.prediction_step(trainer.model, batch, prediction_loss_only=False)
    assert counter.syncs == []
    assert not logits[:unreadable].any() and logits[unreadable:].abs().min() > 0  # placeholders: zero logits
    expected = torch.nn.functional.cross_entropy(
        logits[unreadable:], labels[unreadable:]
    )  # readable rows only
    torch.testing.assert_close(loss, expected)


def _step(trainer, loss_kind):
    model, scale = trainer.model, trainer._logit_scale_param

    def step(inputs):
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=inputs["pixel_values"],
        )
        embeds = class_embeddings(out.text_embeds, 3)
        return clip_class_loss(out.image_embeds, embeds, inputs["labels"], scale.exp(), loss_kind)[0]

    return step


@pytest.mark.parametrize("loss", ["contrastive", "ce"])
def test_the_training_step_compiles_without_a_graph_break(tiny_model_dir, tmp_path, loss):
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path)
    inputs = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(8)]))
    explained = torch._dynamo.explain(_step(trainer, loss))(inputs)
    reasons = [reason.reason for reason in explained.break_reasons]
    assert explained.graph_break_count == 0 and explained.graph_count == 1, reasons


def _train(tiny_model_dir, out, steps: int = 3, **overrides) -> tuple[list[float], dict]:
    transformers.set_seed(0)
    trainer = make_tiny_trainer(tiny_model_dir, out, max_steps=steps, **overrides)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    adapter = {n: p.detach().float().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    return losses, adapter


def test_the_compiled_step_trains_what_the_eager_step_trains(tiny_model_dir, tmp_path):
    # aot_eager: dynamo's graph and AOTAutograd's joint forward/backward, without inductor's code generation (a
    # minute of C++ compiling here; bench/host_step.py runs inductor itself).
    eager = _train(tiny_model_dir, tmp_path / "eager")
    compiled = _train(
        tiny_model_dir, tmp_path / "compiled", torch_compile=True, torch_compile_backend="aot_eager"
    )
    assert compiled[0] == pytest.approx(eager[0], rel=1e-5)
    for name, weight in eager[1].items():
        torch.testing.assert_close(compiled[1][name], weight, rtol=1e-4, atol=1e-6, msg=name)


def test_frozen_weights_stored_in_bf16_change_no_number(tiny_model_dir, tmp_path, monkeypatch):
    stored = _train(tiny_model_dir, tmp_path / "stored", bf16=True)
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "check", bf16=True)
    frozen = [
        m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad
    ]
    assert frozen and all(m.weight.dtype == torch.bfloat16 for m in frozen)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters() if p.requires_grad)
    monkeypatch.setattr(lean_step, "store_frozen_weights_in", lambda model, dtype: 0)
    cast_by_autocast = _train(tiny_model_dir, tmp_path / "cast", bf16=True)
    assert stored[0] == cast_by_autocast[0]  # autocast rounds the fp32 weights the same way, every step
    for name, weight in cast_by_autocast[1].items():
        assert torch.equal(stored[1][name], weight), name


def test_the_prepared_text_mask_is_the_one_the_text_tower_builds(tiny_model_dir, tmp_path):
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    assert not batch["attention_mask"].all()  # the prompts are padded: the text tower needs a mask
    to_device = DeviceInputs(torch.device("cpu"), trainer.model.get_base_model().text_model.config)
    ids, prepared = to_device.prompts(batch["input_ids"], batch["attention_mask"])
    assert (
        prepared.dim() == 4 and to_device.prompts(batch["input_ids"], batch["attention_mask"])[1] is prepared
    )
    clip = trainer.model
    with torch.no_grad():
        built = clip.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        given = clip.get_text_features(input_ids=ids, attention_mask=prepared)
    assert torch.equal(built.pooler_output, given.pooler_output)


def _renamed_fourth(real):  # transformers 5.17's name for the fourth parameter (5.25 calls it `cache`)
    def create_causal_mask(config, inputs_embeds, attention_mask, past_key_values, position_ids=None):
        return real(config, inputs_embeds, attention_mask, past_key_values, position_ids)

    return create_causal_mask


def _keyword_only(real):  # a future signature this project was never checked with: must not be called
    def create_causal_mask(*, config, inputs_embeds, attention_mask, cache):
        raise AssertionError("called with a signature it was not checked against")

    return create_causal_mask


@pytest.mark.parametrize("helper", ["renamed_fourth", "keyword_only", "gone"])
def test_the_text_mask_and_the_training_survive_a_change_of_transformers_internal_helper(
    tiny_model_dir, tmp_path, monkeypatch, helper
):
    """create_causal_mask is transformers-internal (docs/library_internals.md). Whatever its signature becomes, the
    text features and a short training run are those of the installed helper, bit for bit: with the 5.17 name of
    its fourth parameter the mask is still prepared once (4D); with an unknown signature, or none at all, the text
    tower builds it itself from the 2D mask."""
    from transformers import masking_utils

    reference = _train(tiny_model_dir, tmp_path / "reference")
    real = masking_utils.create_causal_mask
    if helper == "gone":
        monkeypatch.delattr(masking_utils, "create_causal_mask")
    else:
        monkeypatch.setattr(masking_utils, "create_causal_mask", globals()[f"_{helper}"](real))
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "check")
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, mask = DeviceInputs(torch.device("cpu"), trainer.model.get_base_model().text_model.config).prompts(
        batch["input_ids"], batch["attention_mask"]
    )
    assert mask.dim() == (4 if helper == "renamed_fourth" else 2)
    # (the text tower keeps the helper it imported when transformers loaded: only our lookup sees the change)
    with torch.no_grad():
        built = trainer.model.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        given = trainer.model.get_text_features(input_ids=ids, attention_mask=mask)
    assert torch.equal(built.pooler_output, given.pooler_output)
    if helper == "keyword_only":
        losses, adapter = _train(tiny_model_dir, tmp_path / "fallback")
        assert losses == reference[0]
        for name, weight in reference[1].items():
            assert torch.equal(adapter[name], weight), name


def test_uint8_pixels_normalised_on_the_device_are_the_collators_values():
    rng = np.random.default_rng(0)
    features = [
        {"pixel_values": rng.integers(0, 256, (3, 5, 4), dtype=np.uint8), "labels": i} for i in range(3)
    ]
    ids, mask = torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long)
    collate = ClipClassificationCollator(
        ids, mask, image_mean=[0.48, 0.45, 0.4], image_std=[0.26, 0.26, 0.27]
    )
    on_host = collate(features)["pixel_values"]
    deferred = ClipClassificationCollator(
        ids, mask, [0.48, 0.45, 0.4], [0.26, 0.26, 0.27], defer_normalization=True
    )
    raw = deferred(features)["pixel_values"]
    assert raw.dtype == torch.uint8  # a quarter of the bytes cross to the device
    assert torch.equal(deferred.normalize(raw), on_host)  # the same float32 operations, bit for bit


def test_each_dataset_and_collator_keeps_its_own_evaluation_loader(tiny_model_dir, tmp_path):
    import dataclasses

    trainer = make_tiny_trainer(
        tiny_model_dir, tmp_path, num_images=12, dataloader_num_workers=1, dataloader_persistent_workers=True
    )
    first = trainer.get_eval_dataloader()
    assert trainer.get_eval_dataloader() is first  # its workers live across passes
    other = trainer.eval_dataset.select(range(6))
    # Trainer's own cache (one loader under the key "eval") would hand back the first dataset's loader here.
    assert len(trainer.get_eval_dataloader(other).dataset) == 6
    assert trainer.evaluate(other)["eval_loss"] != trainer.evaluate()["eval_loss"]
    single = dataclasses.replace(
        trainer.data_collator, prompt_input_ids=trainer.data_collator.prompt_input_ids[:3]
    )
    trainer.data_collator = single  # what the single-template report does: a new collator, a new loader
    assert trainer.get_test_dataloader(other).collate_fn is single


def test_training_after_an_evaluation_runs_every_module_in_training_mode(tiny_model_dir, tmp_path):
    # Trainer's model.train() at every micro-batch is skipped while the model is already training; an evaluation
    # in between sets eval mode, and the next step must walk the whole model back (a deep module's flag shows it).
    trainer = make_tiny_trainer(
        tiny_model_dir,
        tmp_path,
        num_images=8,
        per_device_train_batch_size=4,
        max_steps=3,
        eval_strategy="steps",
        eval_steps=1,
    )
    deep = trainer.model.base_model.model.vision_model.encoder.layers[-1].mlp
    seen = []
    handle = deep.register_forward_hook(
        lambda module, args, out: seen.append((torch.is_grad_enabled(), module.training))
    )
    try:
        trainer.train()
    finally:
        handle.remove()
    training, evaluating = ([mode for grad, mode in seen if grad == phase] for phase in (True, False))
    assert len(training) == 3 and all(training)  # every training forward, each after an evaluation
    assert evaluating and not any(evaluating)
    assert "train" not in trainer.model_wrapped.__dict__  # the shortcut ends with train()
