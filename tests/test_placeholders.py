"""Images that became unreadable after the pre-training check (clip_lora/placeholders.py): batches may be empty
anywhere (a training micro-batch, an accumulation window, an evaluation batch, on any process) without a crash, a
hang or a miscount, and the predictions CSVs name exactly the rows they hold.

Run: python -m pytest tests/test_placeholders.py -q
(Under `torchrun --nproc_per_node 2`, an eval batch with no readable image on one process: tests/test_distributed.py.)
"""

from __future__ import annotations

import csv

import pytest
import torch
import transformers

import train_clip_lora
from clip_lora import artifacts
from clip_lora.cli import run as run_verb
from clip_lora.images import skipped_ids
from clip_lora.testing_utils import make_image_folder
from scale_worker import FirstStepGradients
from testing_utils import WNIDS, make_tiny_trainer, smoke_argv

pytestmark = pytest.mark.usefixtures("image_check_cache")


def _rows(path) -> dict:
    with open(path, newline="") as f:
        return {row["image"]: [float(row[k]) for k in list(row)[3:]] for row in csv.DictReader(f)}


# ---------------------------------------------------------------- training: an accumulation window with an empty part
class WithUnreadable(torch.utils.data.Dataset):
    """The tiny trainer's tensor rows, some of them unreadable (pixel_values None, as the transform returns them)."""

    def __init__(self, rows, unreadable=(), keep=None):
        self.rows = [rows[i] for i in (keep if keep is not None else range(len(rows)))]
        self.unreadable = set(unreadable)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = dict(self.rows[i])
        return {**row, "pixel_values": None} if i in self.unreadable else row


def _one_step(model_dir, out, dataset, per_device, accumulation, loss):
    transformers.set_seed(0)  # the same LoRA init in both runs
    trainer = make_tiny_trainer(
        model_dir, out, num_images=8, max_steps=1, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation, train_sampling_strategy="sequential",
    )  # fmt: skip
    trainer.loss_kind = loss
    trainer.train_dataset = dataset(trainer.train_dataset)
    probe = FirstStepGradients()
    trainer.add_callback(probe)
    trainer.train()
    return [e["loss"] for e in trainer.state.log_history if "loss" in e], probe.grads


@pytest.mark.parametrize(
    "loss, unreadable, readable",
    [
        ("contrastive", range(4), [4, 5, 6, 7]),  # the window's first micro-batch is all unreadable
        ("contrastive", [5], [0, 1, 2, 3, 4, 6, 7]),  # a hole in the second one: the cached features line up
        ("ce", range(4), [4, 5, 6, 7]),
    ],
)
def test_an_accumulation_window_with_unreadable_images_trains_like_one_batch_of_the_readable_ones(
    tiny_model_dir, tmp_path, loss, unreadable, readable
):
    # 8 images, 4 per micro-batch x 2 accumulated, in order: one optimizer step over images 0-7.
    window = _one_step(
        tiny_model_dir, tmp_path / "w", lambda rows: WithUnreadable(rows, unreadable), 4, 2, loss
    )
    alone = _one_step(
        tiny_model_dir,
        tmp_path / "r",
        lambda rows: WithUnreadable(rows, keep=readable),
        len(readable),
        1,
        loss,
    )
    assert window[0] == pytest.approx(alone[0], rel=1e-5)
    assert any(g.abs().sum() > 0 for g in alone[1].values())
    for name, grad in alone[1].items():
        torch.testing.assert_close(window[1][name], grad, atol=1e-6, rtol=1e-4, msg=name)


# ---------------------------------------------------------------- evaluation: a batch with no readable image
@pytest.fixture()
def broken_data(tmp_path):
    """2 classes x 5 val images; at --per_device_eval_batch_size 2 the second batch (val a/2, a/3) is entirely
    unreadable, and one image of the last batch too (which, under 2 processes, is padded on the other process)."""
    data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=6, val_per_class=5, size=16)
    val = sorted((data / "val").rglob("*.JPEG"))
    gone = [val[2], val[3], val[8]]
    for path in gone:
        path.write_bytes(b"not an image any more")
    return data, {p.relative_to(data).as_posix() for p in gone}


def _unchecked(monkeypatch):
    monkeypatch.setattr(train_clip_lora, "verify_splits", lambda splits, *a, **k: splits)


EVAL = ("--per_device_eval_batch_size", "2", "--do_train", "false")


def test_a_training_run_with_an_eval_batch_of_unreadable_images_counts_and_names_only_the_readable_ones(
    broken_data, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    data, gone = broken_data
    _unchecked(monkeypatch)
    (data / "train" / WNIDS[0] / "0.JPEG").write_bytes(b"gone too")  # and a training image
    out = tmp_path / "cached"
    argv = smoke_argv(
        tiny_model_dir, data, out, "--num_train_epochs", "1", "--per_device_eval_batch_size", "2"
    )
    assert run_verb("train", [*argv, "--preprocessing", "cached"]) == 0
    val = {f"val/{p.parent.name}/{p.name}" for p in (data / "val").rglob("*.JPEG")}
    results = artifacts.read_json(out / artifacts.ALL_RESULTS)
    for name, prefix in ((artifacts.PREDICTIONS, "eval"), (artifacts.ZERO_SHOT_PREDICTIONS, "zero_shot")):
        rows = _rows(out / name)
        assert set(rows) == val - gone and len(rows) == 7  # each readable image once, each named right
        labels, predictions, _ = artifacts.read_predictions(out / name)
        assert results[f"{prefix}_accuracy"] == pytest.approx((labels == predictions).mean())
    assert gone | {f"train/{WNIDS[0]}/0.JPEG"} <= skipped_ids(out / artifacts.SKIPPED_IMAGES)
    # The on-the-fly path skips and names the same images.
    out = tmp_path / "on-the-fly"
    assert (
        run_verb("eval", smoke_argv(tiny_model_dir, data, out, *EVAL, "--preprocessing", "on_the_fly")) == 0
    )
    assert set(_rows(out / artifacts.PREDICTIONS)) == val - gone


def test_a_split_whose_every_image_became_unreadable_is_one_line(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    data = make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=4, val_per_class=2, size=16)
    for path in (data / "val").rglob("*.JPEG"):
        path.write_bytes(b"")
    _unchecked(monkeypatch)
    capsys.readouterr()
    assert run_verb("eval", smoke_argv(tiny_model_dir, data, tmp_path / "out", *EVAL)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 1
    assert (
        err.rstrip()
        .splitlines()[-1]
        .startswith(
            "error: every one of the 4 images being evaluated became unreadable after the pre-training check"
        )
    )
