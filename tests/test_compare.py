"""clip-lora compare: two runs side by side. Two small runs that differ only in --seed show that flag, the same data
fingerprint (split differently) and McNemar's p; a run over other images says the data differ; the McNemar counts
pair rows by image id; a folder that cannot be compared is one error line."""

from __future__ import annotations

import csv
import shutil

import datasets
import numpy as np
import pytest

import train_clip_lora
from clip_lora import artifacts, compare
from clip_lora.cli import run as run_verb
from clip_lora.stats import mcnemar_exact_p
from clip_lora.testing_utils import assert_distinct, make_image_folder
from testing_utils import WNIDS, small_argv, user_error


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """Three small runs (3 classes, 2 one-step epochs): seeds 1 and 2 on one image folder, seed 1 on another."""
    base = tmp_path_factory.mktemp("compare")
    same = make_image_folder(base / "data", WNIDS[:3], train_per_class=6, val_per_class=3, size=16)
    # The same file names and counts, other pixels (another generator seed): only the sizes tell them apart.
    other = make_image_folder(base / "other", WNIDS[:3], train_per_class=6, val_per_class=3, size=16, seed=1)
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", base / "hf-datasets")
        for name, data, seed in (("seed1", same, 1), ("seed2", same, 2), ("other", other, 1)):
            out[name] = base / name
            train_clip_lora.main(small_argv(tiny_model_dir, data, out[name], "--seed", str(seed)))
    return out


def test_two_seeds_show_the_seed_the_same_data_and_mcnemar(runs, capsys):
    assert run_verb("compare", [str(runs["seed1"]), str(runs["seed2"])]) == 0
    text = capsys.readouterr().out
    report = compare.compare(runs["seed1"], runs["seed2"])
    assert report["flags"] == [("seed", 1, 2)]  # output_dir differs too, but shapes no result
    assert "flags that differ (A -> B):\n  seed  1 -> 2\n" in text
    prints = [
        artifacts.read_json(runs[n] / artifacts.RUN_CONFIG)["provenance"]["data"] for n in ("seed1", "seed2")
    ]
    assert prints[0]["files_sha256"] == prints[1]["files_sha256"] and report["data"]["same"] is True
    assert (
        f"data: the same images ({prints[0]['images']}, files sha256 {prints[0]['files_sha256'][:16]})"
        in text
    )
    assert "split differently: dev, train (the dev split follows --seed)" in text
    assert "versions: the same (torch " in text and "DIFFER" not in text
    # McNemar from the two predictions files, computed here independently of compare.py.
    right = []
    for name in ("seed1", "seed2"):
        with open(runs[name] / artifacts.PREDICTIONS, newline="") as f:
            right.append({row["image"]: row["label"] == row["prediction"] for row in csv.DictReader(f)})
    b = sum(right[0][i] and not right[1][i] for i in right[0])
    c = sum(right[1][i] and not right[0][i] for i in right[0])
    assert (
        f"on {len(right[0])} val images (paired by image id): A right and B wrong {b}, A wrong and B right {c}"
        in text
    )
    assert f"exact two-sided p = {mcnemar_exact_p(b, c):.4g}" in text
    for key in ("zero_shot_accuracy", "eval_accuracy"):
        values = [artifacts.read_json(runs[n] / artifacts.ALL_RESULTS)[key] for n in ("seed1", "seed2")]
        assert report["accuracy"][key] == values
    # Calibration rows, read from each run's all_results.json.
    for key in ("zero_shot_ece", "eval_ece"):
        values = [artifacts.read_json(runs[n] / artifacts.ALL_RESULTS)[key] for n in ("seed1", "seed2")]
        assert report["calibration"][key] == values
    assert (
        f"{'ECE fine-tuned (val)':<22}" + "".join(f"{v:>8.4f}" for v in report["calibration"]["eval_ece"])
        in text
    )


def test_runs_over_other_images_say_the_data_differ(runs, capsys):
    assert run_verb("compare", [str(runs["seed1"]), str(runs["other"])]) == 0
    text = capsys.readouterr().out
    prints = [
        artifacts.read_json(runs[n] / artifacts.RUN_CONFIG)["provenance"]["data"] for n in ("seed1", "other")
    ]
    assert prints[0]["images"] == prints[1]["images"]  # as many images, with the same names
    assert (
        f"data: THE DATA DIFFER: A {prints[0]['images']} images, files sha256 {prints[0]['files_sha256'][:16]}; "
        f"B {prints[1]['images']} images, files sha256 {prints[1]['files_sha256'][:16]}\n"
        "  splits that differ: dev, train, val\n"
    ) in text
    configs = [artifacts.read_json(runs[n] / artifacts.RUN_CONFIG) for n in ("seed1", "other")]
    assert compare.compare(runs["seed1"], runs["other"])["flags"] == [
        ("data_dir", configs[0]["data_dir"], configs[1]["data_dir"])
    ]
    # The val files have the same names but other bytes: pairing them by id would compare different images.
    assert "McNemar: not computed: the val images differ (val fingerprints differ)" in text


def _with_predictions(run, folder, right, reverse: bool) -> dict:
    """A copy of `run` whose val predictions are right exactly where right(k) holds (k: the image's rank by id),
    its rows in reverse order or not; returns {image id: right}."""
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    with open(folder / artifacts.PREDICTIONS, newline="") as f:
        header, *rows = list(csv.reader(f))
    classes, rank = header[3:], {image: k for k, image in enumerate(sorted(row[0] for row in rows))}
    for row in rows:
        wrong = classes[(classes.index(row[1]) + 1) % len(classes)]
        row[2] = row[1] if right(rank[row[0]]) else wrong
    if reverse:
        rows.reverse()
    with open(folder / artifacts.PREDICTIONS, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return {row[0]: row[1] == row[2] for row in rows}


def test_mcnemar_pairs_rows_by_image_id_not_by_position(runs, tmp_path):
    """A right on ranks 0-4, B on ranks 3-8 with its rows reversed: paired by id, 3 and 4 discordant images;
    paired by position (rank k with rank 8 - k), B would be right on 0-5 and the counts 0 and 1."""
    a_right = _with_predictions(runs["seed1"], tmp_path / "a", lambda k: k < 5, reverse=False)
    assert len(a_right) == 9  # 3 classes x 3 val images: ranks 0-8
    b_right = _with_predictions(runs["seed2"], tmp_path / "b", lambda k: k >= 3, reverse=True)
    b = sum(a_right[i] and not b_right[i] for i in a_right)
    c = sum(b_right[i] and not a_right[i] for i in a_right)
    assert_distinct(b=b, c=c, none=0)  # both kinds of disagreement, unequal: a swap or a lost side shows
    report = compare.compare(tmp_path / "a", tmp_path / "b")["mcnemar"]
    assert (report["n"], report["b"], report["c"]) == (len(a_right), b, c)
    assert report["p_value"] == mcnemar_exact_p(b, c)
    assert report["model_accuracy"] == pytest.approx(np.mean(list(b_right.values())))


@pytest.mark.parametrize("case", ["missing folder", "not a run", "no predictions"])
def test_what_cannot_be_compared_is_one_error_line(runs, tmp_path, capsys, case):
    folder = tmp_path / "b"
    if case == "missing folder":
        expected = f"error: run folder {folder} does not exist"
    elif case == "not a run":
        folder.mkdir()
        (folder / artifacts.PREDICTIONS).write_text("image,label,prediction\n")
        expected = f"error: {folder} is not a finished clip-lora run (no run_config.json or all_results.json)"
    else:
        shutil.copytree(runs["seed2"], folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    if case == "no predictions":
        (folder / artifacts.PREDICTIONS).unlink()
        expected = f"error: {folder} has no predictions.csv (val predictions)"
    assert user_error([str(runs["seed1"]), str(folder)], capsys, verb="compare").startswith(expected)


def test_the_paired_counts_and_their_lines_from_hand_built_runs():
    """8 shared val images, 2 only in A and 5 only in B; A right and B wrong on 1, A wrong and B right on 3."""
    shared = {
        f"s{k}": (k < 5, k == 0 or k >= 2) for k in range(8)
    }  # (A right, B right): b = {1}, c = {5, 6, 7}
    a = {"right": {i: ar for i, (ar, _) in shared.items()} | {"a0": True, "a1": False}}
    b = {"right": {i: br for i, (_, br) in shared.items()} | {f"b{k}": True for k in range(5)}}
    test = compare.paired_test(a, b, val_same=True)
    assert_distinct(n=8, b=1, c=3, only_in_a=2, only_in_b=5)
    assert (test["n"], test["b"], test["c"], test["only_in"]) == (8, 1, 3, {"a": 2, "b": 5})
    assert test["p_value"] == mcnemar_exact_p(1, 3)
    accuracy = {
        "zero_shot_accuracy": [0.1111, 0.2222],
        "eval_accuracy": [0.3333, 0.4444],
        "dev_accuracy": [0.5555, 0.6666],
    }
    assert_distinct(
        **{f"{key} {run}": v for key, pair in accuracy.items() for run, v in zip("AB", pair, strict=True)}
    )
    report = {
        "runs": ["ra", "rb"],
        "flags": [("seed", 1, 2), ("learning_rate", 0.001, 0.0002)],
        "step": {"known": False, "why": "unknown (hand-built)"},
        "data": {"same": None, "fingerprints": [None, None]},
        "versions": {
            "differ": [("torch", "2.1", "2.2")],
            "commits": ["0123456789abcdef", "fedcba9876543210"],
        },
        "accuracy": accuracy,
        "calibration": {"eval_ece": [0.0712, 0.0345]},
        "mcnemar": test,
    }
    text = compare.format_report(report)
    assert "flags that differ (A -> B):\n  seed           1 -> 2\n  learning_rate  0.001 -> 0.0002\n" in text
    assert "\ncommit: 0123456789ab -> fedcba987654\n" in text
    assert f"\n{'calibration':<24}{'A':>8}{'B':>8}\n  ECE fine-tuned (val)    0.0712  0.0345" in text
    assert (
        "McNemar, fine-tuned A vs B on 8 val images (paired by image id; 2 only in A, 5 only in B): "
        f"A right and B wrong 1, A wrong and B right 3, exact two-sided p = {mcnemar_exact_p(1, 3):.4g}"
    ) in text
    assert "\n  zero-shot (val)         0.1111  0.2222\n  fine-tuned (val)        0.3333  0.4444\n" in text
    assert "\n  dev (selection)         0.5555  0.6666" in text


def test_the_same_versions_and_commit_and_an_uncomputed_test_are_said_so():
    a = {"right": {"x": True, "y": False}}
    b = {"right": {"z": True}}
    assert compare.paired_test(a, b, val_same=None) == {
        "computed": False,
        "reason": "the runs share no val image id",
    }
    differ = compare.paired_test(a, a, val_same=False)
    assert differ == {"computed": False, "reason": "the val images differ (val fingerprints differ)"}
    versions = {
        "python": "3.11",
        "peft": "0.1",
        "torch": "2.1",
        "zlib": "1",
    }  # stored sorted; read in that order
    report = {
        "runs": ["ra", "rb"],
        "flags": [],
        "step": {"known": False, "why": "unknown (hand-built)"},
        "data": {"same": None, "fingerprints": [None, None]},
        "versions": {
            "differ": [],
            "versions": [versions, dict(versions)],
            "commits": ["0123456789abcdef"] * 2,
        },
        "accuracy": {},
        "calibration": {},
        "mcnemar": differ,
    }
    lines = compare.format_report(report).splitlines()
    assert (
        "flags: the same" in lines
        and "versions: the same (torch 2.1, peft 0.1, python 3.11, zlib 1)" in lines
    )
    assert "commit: 0123456789ab" in lines and not any(line.startswith("calibration") for line in lines)
    assert lines[-2:] == ["", "McNemar: not computed: the val images differ (val fingerprints differ)"]
