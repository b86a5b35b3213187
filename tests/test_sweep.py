"""sweep.py: one run per seed into seed-<k>/, a summary equal to each seed's files, and the README block from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clip_lora import artifacts, sweep
from clip_lora.cli import run as run_verb
from clip_lora.stats import mcnemar, mcnemar_exact_p, mean_std
from clip_lora.testing_utils import assert_distinct
from testing_utils import smoke_argv


@pytest.fixture(scope="module")
def sweep_run(tiny_model_dir, image_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    argv = [
        "--seeds",
        "0,1",
        *smoke_argv(tiny_model_dir, image_root, out, "--num_train_epochs", "1", "--max_train_samples", "32"),
    ]
    return out, sweep.main(argv)


def test_sweep_writes_seed_folders_and_a_summary_equal_to_them(sweep_run):
    out, summary = sweep_run
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert [run["seed"] for run in summary["per_seed"]] == [0, 1]
    accuracies = []
    for run in summary["per_seed"]:
        folder = out / f"seed-{run['seed']}"
        results = json.loads((folder / "all_results.json").read_text())
        assert json.loads((folder / "run_config.json").read_text())["seed"] == run["seed"]
        for key in (
            "zero_shot_accuracy",
            "eval_accuracy",
            "eval_macro_f1",
            "dev_accuracy",
            "trainable_params",
        ):
            assert run[key] == results[key], key
        labels, tuned, _ = artifacts.read_predictions(folder / "predictions.csv")
        _, zero_shot, _ = artifacts.read_predictions(folder / "zero_shot_predictions.csv")
        assert run["mcnemar_vs_zero_shot"] == mcnemar(labels, zero_shot, tuned)
        test = run["mcnemar_vs_zero_shot"]
        assert test["c"] - test["b"] == round(
            (results["eval_accuracy"] - results["zero_shot_accuracy"]) * 100
        )
        accuracies.append(results["eval_accuracy"])
    mean, std = mean_std(accuracies)
    assert summary["aggregate"]["eval_accuracy"] == {"mean": mean, "std": std}
    markdown = (out / "summary.md").read_text()
    assert f"{100 * mean:.2f}%" in markdown and "McNemar" in markdown


def test_rerun_reuses_finished_seeds_and_summarize_rebuilds(sweep_run, monkeypatch):
    out, summary = sweep_run
    monkeypatch.setattr(
        sweep.train_clip_lora, "main", lambda argv: pytest.fail("a finished seed was retrained")
    )
    assert sweep.run_seeds([0, 1], ["--output_dir", str(out)]) == out
    assert sweep.main(["--summarize", str(out)]) == summary


def _readme_run(summary_path, readme, capsys, *extra) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = run_verb("sweep", ["--readme", str(summary_path), "--readme_path", str(readme), *extra])
    return code, capsys.readouterr().err.splitlines()


def test_readme_block_is_generated_from_the_summary_of_a_real_run_only(sweep_run, tmp_path, capsys):
    out, summary = sweep_run
    readme = tmp_path / "README.md"
    original = f"# x\nbefore\n{sweep.README_START}\nold typed numbers 99.99%\n{sweep.README_END}\nafter\n"
    readme.write_text(original)
    # The fixture's sweep ran a tiny local model on a local folder: its numbers must not pass for the real ones.
    code, err = _readme_run(out / "summary.json", readme, capsys)
    assert (
        code == 2 and len(err) == 1 and err[0].startswith(f"error: {out / 'summary.json'} is not the real ")
    )
    assert "--allow_local_results" in err[0] and readme.read_text() == original
    code, _ = _readme_run(out / "summary.json", readme, capsys, "--allow_local_results")
    block = readme.read_text().split(sweep.README_START)[1].split(sweep.README_END)[0]
    assert code == 0 and block.lstrip().startswith("**Not the real experiment** (seed 0 ran ")
    assert block.strip().endswith(sweep.to_markdown(summary).strip())
    # The same numbers recorded as the real experiment's (Hub model, the fast.ai archive): written as they are.
    real = {**summary, "per_seed": [{**r, "model": "openai/clip-vit-base-patch16", "data": "fastai_archive"}
                                    for r in summary["per_seed"]]}  # fmt: skip
    (tmp_path / "real.json").write_text(json.dumps(real))
    readme.write_text(original)
    assert _readme_run(tmp_path / "real.json", readme, capsys)[0] == 0
    text = readme.read_text()
    assert (
        "99.99%" not in text
        and text.startswith("# x\nbefore\n")
        and text.endswith(f"{sweep.README_END}\nafter\n")
    )
    block = text.split(sweep.README_START)[1].split(sweep.README_END)[0]
    assert block.strip() == sweep.to_markdown(real).strip()
    # The block names the command that wrote it, as a user types it (the verb, not a module path).
    assert f"by `clip-lora sweep --readme {summary['output_dir']}/summary.json`." in block
    # Wrong paths and a README without the block: one line each, nothing written.
    for argv_paths, start in [
        ((tmp_path / "nope.json", readme), f"error: --readme {tmp_path / 'nope.json'}: no such file"),
        ((tmp_path / "real.json", tmp_path / "docs" / "README.md"), "error: --readme_path "),
        ((readme, readme), f"error: cannot use --readme {readme}"),  # not a summary
    ]:
        code, err = _readme_run(*argv_paths, capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith(start), err
    readme.write_text("no markers\n")
    code, err = _readme_run(tmp_path / "real.json", readme, capsys)
    assert code == 2 and len(err) == 1 and "block to fill" in err[0] and readme.read_text() == "no markers\n"


@pytest.mark.parametrize("seeds", ["0,0", "-1", "x", "4294967296", ","])
def test_bad_seeds_are_one_line_before_any_run(seeds, tmp_path, capsys, monkeypatch):
    from clip_lora.cli import run as run_verb

    monkeypatch.setattr(sweep, "run_seeds", lambda *a: pytest.fail("a seed ran"))
    assert run_verb("sweep", [f"--seeds={seeds}", "--output_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: --seeds {seeds!r} must be distinct comma-separated integers in [0, 4294967295], e.g. 0,1,2.\n"
    )


def _predictions(path, labels, right) -> None:
    """A predictions CSV over two classes, right exactly where `right` holds."""
    predicted = [label if ok else 1 - label for label, ok in zip(labels, right, strict=True)]
    artifacts.write_predictions(
        path,
        [f"i{k}" for k in range(len(labels))],
        np.array(labels),
        np.eye(2)[predicted] * 5,
        ["cat", "dog"],
    )


def test_b_and_c_count_the_right_model_from_hand_built_predictions(tmp_path):
    """10 val images: zero-shot right on 0-4, fine-tuned on 1-8; b (only zero-shot right) = 1, c (only LoRA) = 4."""
    folder = sweep.seed_dir(tmp_path, 7)
    folder.mkdir(parents=True)
    labels = [k % 2 for k in range(10)]
    _predictions(folder / artifacts.ZERO_SHOT_PREDICTIONS, labels, [k < 5 for k in range(10)])
    _predictions(folder / artifacts.PREDICTIONS, labels, [1 <= k <= 8 for k in range(10)])
    results = {"zero_shot_accuracy": 0.5, "eval_accuracy": 0.8, "eval_macro_f1": 0.75, "dev_accuracy": 0.7}
    assert_distinct(b=1, c=4, **results)
    artifacts.write_json(folder / artifacts.ALL_RESULTS, results)
    summary = sweep.summarize(tmp_path, [7])
    test = summary["per_seed"][0]["mcnemar_vs_zero_shot"]
    assert (test["n"], test["b"], test["c"]) == (10, 1, 4)
    assert (test["baseline_accuracy"], test["model_accuracy"]) == (0.5, 0.8)
    row = f"| 7 | 50.00% | 80.00% | 1 | 4 | {mcnemar_exact_p(1, 4):.3g} |"
    assert row in sweep.to_markdown(summary) and row in (tmp_path / sweep.SUMMARY_MD).read_text()
