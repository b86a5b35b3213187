"""--streaming: a local parquet dataset read as an IterableDataset, split across processes, trained through main().

The 2-process run itself (torchrun --nproc_per_node 2 ... --streaming true) takes ~45 s on these 2 shared CPUs, over
this file's budget; it is a documented manual check (README, notes). Here: the per-process split of the stream
(disjoint, complete, never a dev image) and one single-process streamed training run.
"""

from __future__ import annotations

import csv
import hashlib
import json
from types import SimpleNamespace

import datasets
import numpy as np
import pytest

import train_clip_lora
from clip_lora import streaming
from clip_lora.cli import run as run_verb
from clip_lora.data import load_splits
from testing_utils import smoke_argv


@pytest.fixture(scope="module")
def parquet_dir(image_root, tmp_path_factory):
    """The generated image set as a 'hub-style' folder: train in 2 parquet shards, validation in 1."""
    out = tmp_path_factory.mktemp("parquet")
    splits = load_splits(str(image_root), dev_split_ratio=0.1)
    train = datasets.concatenate_datasets([splits["train"], splits["dev"]]).remove_columns("image_id")
    for i in range(2):
        train.shard(2, i).to_parquet(str(out / f"train-{i:05d}-of-00002.parquet"))
    splits["val"].remove_columns("image_id").to_parquet(str(out / "validation-00000-of-00001.parquet"))
    return out


def _args(path, rank=0, world_size=1):
    data_args = SimpleNamespace(
        dataset_name=str(path), class_names_file=None, max_eval_samples=20, dev_split_ratio=0.1
    )
    return data_args, SimpleNamespace(max_steps=2, seed=0, process_index=rank, world_size=world_size)


def _keys(split) -> list[tuple[int, str]]:
    return [(row["label"], hashlib.md5(np.asarray(row["image"]).tobytes()).hexdigest()) for row in split]


def test_stream_is_split_across_processes_disjoint_complete_and_without_dev(parquet_dir):
    stored = _keys(datasets.Dataset.from_parquet(sorted(str(f) for f in parquet_dir.glob("train-*.parquet"))))
    assert len(set(stored)) == 200
    ranks = [streaming.load_streaming_splits(*_args(parquet_dir, rank, 2)) for rank in (0, 1)]
    assert isinstance(ranks[0]["train"], datasets.IterableDataset) and len(ranks[0]["val"]) == 20
    assert ranks[0]["train"].features["label"].names[0] == "tench"
    dev = _keys(ranks[0]["dev"])
    assert len(set(dev)) == 20 and dev == _keys(ranks[1]["dev"])  # the same dev on every process
    parts = [_keys(r["train"]) for r in ranks]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(
        set(stored) - set(dev)
    )  # every non-dev image once, across ranks


def test_streamed_training_run_through_main(parquet_dir, tiny_model_dir, tmp_path):
    argv = smoke_argv(
        tiny_model_dir,
        parquet_dir,
        tmp_path,
        "--dataset_name",
        str(parquet_dir),
        "--streaming",
        "true",
        "--max_steps",
        "2",
        "--max_eval_samples",
        "20",
    )
    results = train_clip_lora.main(argv)
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and "eval_accuracy" in results and "dev_accuracy" in results
    with open(tmp_path / "predictions.csv", newline="") as f:
        assert [row["image"] for row in csv.DictReader(f)] == [f"validation/{i}" for i in range(20)]
    no_steps = [a for a in argv if a not in ("--max_steps", "2")] + ["--output_dir", str(tmp_path / "again")]
    assert run_verb("train", no_steps) == 2  # a stream has no length: --max_steps is required
