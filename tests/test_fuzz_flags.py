"""Fuzz: random values for every flag, drawn from its type's edge cases; each draw ends in one of two outcomes.

For each draw (one to three flags over the smoke run): exit 0 with finite results, or exit 2 with exactly one
`error:` line, the last one, and no exception escaping; and nothing outside the run's output dir changed (the model,
the images and the working directory are compared byte for byte; the datasets cache is a cache and lives apart).

The flags are every field of the model, data and LoRA arguments and every TrainingArguments field this project
redefines or gives a rule (clip_lora.validation.TRAINING_RULES). Values: 0, 1, -1, nan, +-inf, empty, huge, a wrong
type, stray braces, a non-UTF-8 byte (as Python's argv carries it), the field's default and its choices. Most draws
are refused by the validation before any data or model; the ones that pass run a tiny training (one step, 8 images).

Seeded and derandomized. FUZZ_EXAMPLES sets the number of draws (default 25 here; `make fuzz` runs 400). Draws of
other kinds (image bytes and geometry) plug in as further strategies in `draws()`.

Run: python -m pytest tests/test_fuzz_flags.py -q
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import TrainingArguments

from clip_lora import image_check, validation
from clip_lora.arguments import ARGUMENT_CLASSES, ClipLoraTrainingArguments
from clip_lora.cli import run as run_verb
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS, smoke_argv

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# Keeps a passing draw tiny; drawn flags come after these, so they override them.
TINY_RUN = (
    *("--max_steps", "1", "--num_train_epochs", "1", "--max_train_samples", "8", "--max_eval_samples", "4"),
    *("--per_device_train_batch_size", "4", "--report_to", "none", "--disable_tqdm", "true"),
)
# Flags whose large values only make the run long (a legitimate request, not a fault): drawn without "huge".
RUN_LENGTH_FLAGS = {"max_steps", "num_train_epochs", "dataloader_num_workers", "lora_r"}
HUGE = "4294967296"
COMMON = ["0", "1", "-1", "", " ", "abc", "{}", "{x}", "a {} {", "\udcff", HUGE]
BY_KIND = {
    bool: ["true", "false", "maybe"],
    int: ["2", "nan", "1.5", "-4294967296"],
    float: ["0.5", "1e-3", "nan", "inf", "-inf", "1e300", "-1e-300"],
    str: ["a photo of a {}.", "a/b", ".", "x,y", "q_proj,(v"],
}


def fuzzed_fields() -> dict[str, dataclasses.Field]:
    base = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    fields = {}
    for cls in ARGUMENT_CLASSES:
        for field in dataclasses.fields(cls):
            ours = cls is not ClipLoraTrainingArguments or field is not base.get(field.name)
            if field.init and (ours or field.name in validation.TRAINING_RULES):
                fields[field.name] = field
    return fields


def _kind(field: dataclasses.Field):
    default = field.default if field.default is not dataclasses.MISSING else None
    for kind in (bool, int, float):
        if isinstance(default, kind):
            return kind, default
    return str, default


def edge_values(field: dataclasses.Field) -> list[str]:
    kind, default = _kind(field)
    values = [*COMMON, *BY_KIND[kind]]
    if default is not None:
        values.append(str(default).lower() if kind is bool else str(default))
    values += [str(c) for c in field.metadata.get("choices", ())]
    if field.name in RUN_LENGTH_FLAGS:
        values = [v for v in values if v not in (HUGE, "1e300", "inf")]
    return list(dict.fromkeys(values))


FIELDS = fuzzed_fields()


def draws():
    flag = st.sampled_from(sorted(FIELDS)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(edge_values(FIELDS[name])))
    )
    return st.lists(flag, min_size=1, max_size=3, unique_by=lambda pair: pair[0])


def snapshot(*roots: Path, skip: Path) -> dict[str, str]:
    state = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and skip not in path.parents and path != skip:
                state[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return state


def finite_numbers(value) -> bool:
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, float):
        return math.isfinite(value)
    return True


@pytest.fixture(scope="module")
def fuzz_data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("fuzz-data"), WNIDS[:2], 6, 2, size=8)


def test_every_flag_draw_is_a_clean_run_or_one_error_line(tiny_model_dir, fuzz_data, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(image_check, "default_cache_dir", lambda: tmp_path / "image-check-cache")
    counter = iter(range(10**9))
    outcomes = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(draw=draws())
    def check(draw):
        out = work / "runs" / f"run-{next(counter)}"
        flags = [x for name, value in draw for x in (f"--{name}", value)]
        argv = smoke_argv(tiny_model_dir, fuzz_data, out, *TINY_RUN, *flags)
        given_out = dict(draw).get("output_dir")
        run_dir = (work / given_out).resolve() if given_out not in (None, "") else out
        before = snapshot(tiny_model_dir, fuzz_data, work, skip=run_dir)
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                code = run_verb("train", argv)
        except BaseException as err:  # noqa: BLE001 - any escaping exception is the failure this test looks for
            pytest.fail(f"{flags!r}: {type(err).__name__}: {err}")
        lines = stderr.getvalue().strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        outcomes.append(code)
        if code == 0:
            results = json.loads((run_dir / "all_results.json").read_text())
            assert finite_numbers(results), (flags, results)
        else:
            assert code == 2 and len(errors) == 1 and lines[-1] == errors[0], (flags, lines[-5:])
        after = snapshot(tiny_model_dir, fuzz_data, work, skip=run_dir)
        assert after == before, (flags, set(after) ^ set(before))
        if run_dir.is_relative_to(work) and run_dir != work:
            shutil.rmtree(run_dir, ignore_errors=True)

    check()
    # Both paths were exercised: some draws ran (tiny) trainings, some were refused.
    assert outcomes.count(0) >= 1 and outcomes.count(2) >= 1, outcomes
