"""--streaming: train from a hub dataset too large to download whole (ImageNet-scale) as an IterableDataset.

    python train_clip_lora.py --dataset_name ILSVRC/imagenet-1k --streaming true --max_steps 20000 \
        --max_eval_samples 5000 ...                                   # torchrun/accelerate: each process its shard

What streams and what does not:
- train is streamed: the first `n_dev` examples of the stream (in the dataset's stored order) become dev; the rest
  (every example whose image bytes are not a dev image's: robust to how shards are later split) is shuffled (seeded,
  1,000-example buffer) and split across processes with `datasets.distributed.split_dataset_by_node` (whole shards
  per process when their number divides evenly, else every world_size-th example).
- dev (n_dev = --max_eval_samples, or dev_split_ratio x the size the dataset states) and val (the validation/val/test
  split, first --max_eval_samples) are read once into memory, so evaluation and the predictions CSVs work unchanged.
- the same transform and collator as the map-style path; the Trainer needs --max_steps (a stream has no length).
Because each process already holds its own shard, `StreamingTrainer` builds the train DataLoader itself: the
accelerate-prepared one would dispatch from process 0 or shard a second time and drop data.
"""

from __future__ import annotations

import hashlib
import logging

import datasets
import torch
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from clip_lora.data import (
    VAL_SPLIT_NAMES,
    DataError,
    class_features,
    class_names_for,
    image_label_columns,
    standard_columns,
)
from clip_lora.trainer import ClipLoraTrainer

logger = logging.getLogger(__name__)

SHUFFLE_BUFFER = 1000


def _image_key(example: dict) -> str:
    image = example["image"]  # undecoded: {"bytes", "path"}
    return (
        hashlib.md5(image["bytes"], usedforsecurity=False).hexdigest()
        if image.get("bytes")
        else str(image["path"])
    )


def _materialise(stream, n: int | None, split: str, features: datasets.Features) -> datasets.Dataset:
    rows = list(stream.take(n) if n is not None else stream)
    for i, row in enumerate(rows):
        row["image_id"] = f"{split}/{i}"
    return datasets.Dataset.from_list(rows, features=features)


def shard_for_process(
    stream: datasets.IterableDataset, rank: int, world_size: int
) -> datasets.IterableDataset:
    """This process's part of the stream (disjoint across ranks, together the whole stream)."""
    return split_dataset_by_node(stream, rank=rank, world_size=world_size) if world_size > 1 else stream


def load_streaming_splits(data_args, training_args) -> dict:
    """{'train': IterableDataset (this process's shard), 'dev': Dataset, 'val': Dataset}, columns image/label(/id)."""
    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise DataError(
            "--streaming needs --max_steps (a stream has no length to count epochs in), e.g. 20000"
        )
    if getattr(data_args, "shots_per_class", None) or getattr(data_args, "max_train_samples", None):
        raise DataError(
            "--shots_per_class / --max_train_samples need the whole train split; drop --streaming for them"
        )
    name = data_args.dataset_name
    config = (
        {"name": data_args.dataset_config_name} if getattr(data_args, "dataset_config_name", None) else {}
    )
    raw = datasets.load_dataset(name, streaming=True, **config)
    val_name = next((n for n in VAL_SPLIT_NAMES if n in raw), None)
    if "train" not in raw or val_name is None:
        raise DataError(
            f"streamed dataset {name} needs a train and a validation/val/test split; it has {list(raw)}"
        )
    image_col, label_col = image_label_columns(
        raw["train"].features or datasets.Features(),
        name,
        getattr(data_args, "image_column_name", None),
        getattr(data_args, "label_column_name", None),
    )
    names = class_names_for(
        raw["train"].features[label_col].names, data_args.class_names_file, f"streamed dataset {name}"
    )
    features = class_features(names)
    # Images stay undecoded (bytes) until training reads them: dev is recognised by its bytes, and cheap to hold.
    raw_features = datasets.Features({**features, "image": datasets.Image(decode=False)})
    plain = datasets.Features({k: v for k, v in raw_features.items() if k != "image_id"})

    def tidy(stream):
        return standard_columns(stream, image_col, label_col).cast(plain)

    train = tidy(raw["train"])
    n_dev = data_args.max_eval_samples
    stated = raw["train"].info.splits["train"].num_examples if raw["train"].info.splits else None
    if stated:
        n_dev = min(n_dev or stated, max(1, round(data_args.dev_split_ratio * stated)))
    if not n_dev:
        raise DataError(f"{name} does not state its size: pass --max_eval_samples N (the dev split's size)")
    dev = _materialise(train, n_dev, "train", raw_features)
    val = _materialise(tidy(raw[val_name]), data_args.max_eval_samples, val_name, raw_features)
    dev_keys = {_image_key(row) for row in dev}
    train = train.filter(lambda example: _image_key(example) not in dev_keys)
    train = train.shuffle(seed=training_args.seed, buffer_size=SHUFFLE_BUFFER).cast_column(
        "image", datasets.Image()
    )
    train = train.decode(True)  # a cast after filter() alone leaves images undecoded (datasets 5.2)
    train = shard_for_process(train, training_args.process_index, training_args.world_size)
    dev, val = (split.cast_column("image", datasets.Image()) for split in (dev, val))
    logger.info(
        "Streaming %s: train streamed (process %d of %d), dev %d and val %d images in memory",
        name,
        training_args.process_index,
        training_args.world_size,
        len(dev),
        len(val),
    )
    return {"train": train, "dev": dev, "val": val}


class TransformedStream(torch.utils.data.IterableDataset):
    """The stream's examples through the map-style path's transform, in chunks of `chunk` images.

    (IterableDataset.map would do the same, but leaves pending asyncio tasks behind when training stops mid-stream.)
    """

    def __init__(self, stream: datasets.IterableDataset, transform, chunk: int = 64):
        self.stream, self.transform, self.chunk = stream, transform, chunk

    def set_epoch(self, epoch: int) -> None:  # Trainer calls this: a new shuffle order each epoch
        self.stream.set_epoch(epoch)

    def _flush(self, rows: list[dict]):
        out = self.transform({"image": [r["image"] for r in rows], "label": [r["label"] for r in rows]})
        yield from ({key: values[i] for key, values in out.items()} for i in range(len(rows)))

    def __iter__(self):
        rows = []
        for example in self.stream:  # inside a DataLoader worker, datasets gives each worker its own shards
            rows.append(example)
            if len(rows) == self.chunk:
                yield from self._flush(rows)
                rows = []
        if rows:
            yield from self._flush(rows)


def with_transform(split, transform):
    """set_transform for a Dataset; a lazily transformed stream for an IterableDataset (the same transform)."""
    if isinstance(split, datasets.IterableDataset):
        return TransformedStream(split, transform)
    split.set_transform(transform)
    return split


class _EpochLoader(DataLoader):
    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


class StreamingTrainer(ClipLoraTrainer):
    """ClipLoraTrainer whose train DataLoader reads this process's shard as it is (see the module docstring)."""

    def get_train_dataloader(self) -> DataLoader:
        return _EpochLoader(
            self.train_dataset,
            batch_size=self._train_batch_size,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )
