"""lost_images: images that become unreadable DURING training stop the run in one line (or are trained around, on
request), counted per split and class; the rerun after the repair resumes.

Before: every training image of one class overwritten with garbage after a checkpoint: exit 0, that class's recall
1.0 -> 0.0, only per-image "Skipping" warnings.
"""

from __future__ import annotations

import shutil

import pytest

from clip_lora import artifacts, lost_images
from clip_lora.lost_images import LostImages
from clip_lora.trainer import ClipLoraTrainer
from testing_utils import run_verb, smoke_argv, user_error

CLASSES = ["tench", "church", "parachute"]


def guard(tmp_path, lines: list[str], train_labels=(0, 0, 0, 1, 1, 1, 1, 2, 2, 2), stop=True) -> LostImages:
    """Train images t0..t9 with those labels, dev images d0..d2 (one per class); skipped_images.txt holds `lines`."""
    log = tmp_path / "skipped_images.txt"
    log.write_text(
        "earlier\t/data/earlier.jpg\tunreadable when loaded (an earlier attempt's, before this run)\n"
    )
    splits = {
        "train": (
            [f"t{i}" for i in range(len(train_labels))] + ["earlier"],
            [*train_labels, 1],
        ),  # not counted: not lost in this run
        "dev": (["d0", "d1", "d2"], [0, 1, 2]),
    }
    made = LostImages(splits, CLASSES, log, stop)
    with open(log, "a") as f:
        f.write("".join(line + "\n" for line in lines))
    return made


def loaded(image_id: str) -> str:
    return f"{image_id}\t/data/{image_id}.jpg\tunreadable when loaded (cannot identify image file)"


def test_a_class_that_lost_every_image_is_named_once_however_often_it_was_loaded(tmp_path):
    lines = [loaded(i) for i in ("t0", "t1", "t2", "t0", "t2")]  # loaded again each epoch
    problem = guard(tmp_path, lines, train_labels=[0] * 3 + [1] * 30 + [2] * 30).problem()
    assert problem.startswith("images became unreadable during the run (train: every image of tench)")
    assert "church" not in problem and "dev" not in problem


def test_the_pre_training_checks_own_skips_and_other_splits_ids_do_not_count(tmp_path):
    lines = [f"t{i}\t/data/t{i}.jpg\tcannot identify image file" for i in range(10)] + [
        loaded("v7"),
        loaded("d1"),
    ]
    problem = guard(tmp_path, lines).problem()
    assert problem == (  # dev's one church image was its whole class (and a third of the split)
        "images became unreadable during the run (dev: every image of church; dev: 1 of 3 images (33%, over the 10% "
        f"limit)); they are listed in {tmp_path / 'skipped_images.txt'}"
    )


@pytest.mark.parametrize("lost, stops", [(10, False), (11, True)])
def test_the_share_of_a_split_stops_just_above_its_limit(tmp_path, lost, stops):
    labels = [i % 10 for i in range(100)]  # 10 classes of 10: no class is emptied by 11 lost images
    names = [f"class{k}" for k in range(10)]
    log = tmp_path / "skipped_images.txt"
    made = LostImages({"train": ([f"t{i}" for i in range(100)], labels)}, names, log)
    log.write_text("".join(loaded(f"t{i}") + "\n" for i in range(lost)))
    problem = made.problem()
    assert (problem is not None) == stops and lost_images.LOST_SHARE == 0.10
    if stops:
        assert "train: 11 of 100 images (11%, over the 10% limit)" in problem


def test_continue_warns_once_and_goes_on(tmp_path, caplog):
    check = guard(tmp_path, [loaded(i) for i in ("t0", "t1", "t2")], stop=False)
    for step in (12, 24, 36):  # a checkpoint or an epoch's end each
        check.check(is_main_process=True, step=step)
    warnings = [r.getMessage() for r in caplog.records if "became unreadable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].endswith("training goes on (--on_lost_images continue)")
    with pytest.raises(lost_images.DataError, match="--on_lost_images continue"):
        guard(tmp_path, [loaded(i) for i in ("t0", "t1", "t2")]).check(is_main_process=True, step=12)


def test_an_epochs_end_and_its_checkpoint_read_the_list_once(tmp_path, monkeypatch):
    check = guard(tmp_path, [])
    reads = []
    monkeypatch.setattr(check, "problem", lambda: reads.append(1))
    for step in (12, 12, 24):  # on_epoch_end, then _save_checkpoint at the same step; the next epoch
        check.check(is_main_process=True, step=step)
    assert len(reads) == 2


def test_a_class_overwritten_after_a_checkpoint_stops_the_run_and_the_repaired_rerun_resumes(
    tiny_model_dir, image_root, tmp_path, monkeypatch, capsys, caplog
):
    data = tmp_path / "data"
    shutil.copytree(image_root, data)
    first_class = sorted(p for p in (data / "train").iterdir())[0]
    originals = {p: p.read_bytes() for p in first_class.iterdir()}
    save = ClipLoraTrainer._save_checkpoint

    def save_then_overwrite(self, model, trial):  # after the first checkpoint, the class's files go bad
        save(self, model, trial)
        if self.state.global_step == steps_per_epoch:
            for path in originals:
                path.write_bytes(b"rewritten by a sync client")

    monkeypatch.setattr(ClipLoraTrainer, "_save_checkpoint", save_then_overwrite)
    out = tmp_path / "out"
    argv = smoke_argv(tiny_model_dir, data, out, "--num_train_epochs", "3", "--max_eval_samples", "20")
    steps_per_epoch = (
        12  # 200 images - 10% dev = 180 train / global batch 16 -> 12 steps (the last one short)
    )
    line = user_error(argv, capsys)
    assert line.startswith(
        "error: images became unreadable during the run (train: every image of tench)"
    )  # n01440764
    assert f"it resumes from {out / f'checkpoint-{steps_per_epoch}'}" in line  # not from the bad epoch
    assert not (out / f"checkpoint-{2 * steps_per_epoch}").exists()
    assert not (out / artifacts.ALL_RESULTS).exists()

    for path, data_bytes in originals.items():  # repaired: the rerun resumes and finishes
        path.write_bytes(data_bytes)
    monkeypatch.setattr(ClipLoraTrainer, "_save_checkpoint", save)
    with caplog.at_level("INFO"):
        assert run_verb("train", argv) == 0
    resumed = f"Resuming the interrupted run from {out / f'checkpoint-{steps_per_epoch}'}"
    assert any(record.getMessage().startswith(resumed) for record in caplog.records)
    assert (out / artifacts.ALL_RESULTS).exists()


def test_a_val_class_whose_every_image_became_unreadable_is_marked_in_the_report_not_a_row_of_zeros(
    tiny_model_dir, image_root, tmp_path, monkeypatch, capsys
):
    import train_clip_lora

    data = tmp_path / "data"
    shutil.copytree(image_root, data)
    church, parachute = (sorted((data / "val").iterdir())[k] for k in (4, 9))  # n03028079, n03888257
    for path in church.iterdir():
        path.write_bytes(b"rewritten")
    next(iter(sorted(parachute.iterdir()))).write_bytes(b"rewritten")  # one of this class's 10
    monkeypatch.setattr(
        train_clip_lora, "verify_splits", lambda splits, *a, **k: splits
    )  # as if after the check
    out = tmp_path / "eval"
    assert run_verb("train", smoke_argv(tiny_model_dir, data, out, "--do_train", "false")) == 0
    report = artifacts.read_json(out / artifacts.CLASSIFICATION_REPORT_JSON)["per_class"]
    assert report["church"]["support"] == 0 and report["church"]["unreadable"] == 10
    assert report["parachute"]["support"] == 9 and report["parachute"]["unreadable"] == 1
    assert all("unreadable" not in row for name, row in report.items() if name not in ("church", "parachute"))
    note = (
        "Unreadable during the run, left out of the numbers: church 10 (no readable image: its row is not a "
        "measurement), parachute 1"
    )
    assert note in (out / artifacts.CLASSIFICATION_REPORT_MD).read_text()
    assert note in (out / "README.md").read_text()  # the card's per-class section
    assert note in capsys.readouterr().out
