"""Datasets for CLIP LoRA fine-tuning: ImageNette, any local imagefolder, or a Hub image-classification set.

Usage:
    splits = load_splits("imagenette", data_dir="data", imagenette_size="320")  # DatasetDict train/dev/val
    splits["train"].set_transform(make_transform(processor.image_processor))

Every split has the columns image (datasets.Image, decoded lazily), label (ClassLabel with human class names)
and image_id (str). Hidden files and folders (a name starting with '.') are ignored everywhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from pathlib import Path

import datasets
import numpy as np

from clip_lora import sources
from clip_lora.artifacts import escape_path, listing
from clip_lora.class_names import MIN_CLASSES
from clip_lora.data_layout import (  # noqa: F401 - the tables and folder readers, re-exported for their users
    DEFAULT_IMAGENETTE_DIR,
    FASTAI_DATASETS,
    IMAGENETTE_ARCHIVES,
    IMAGENETTE_CLASSES,
    IMAGEWOOF_ARCHIVES,
    IMAGEWOOF_CLASSES,
    KNOWN_WNIDS,
    VAL_SPLIT_NAMES,
    archive_folder,
    class_folders,
    class_names_for,
    find_split_dirs,
    imagefolder_classes,
    imagenette_base,
    imagenette_root,
    is_hidden,
    is_utf8,
    names_from_file,
    no_imagenette_line,
    wnids_to_names,
)
from clip_lora.download import DataError, download_file, md5sum, safe_extract
from clip_lora.errors import ClassNameError
from clip_lora.images import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)


def class_features(names: list[str]) -> datasets.Features:
    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=names),
            "image_id": datasets.Value("string"),
        }
    )


# ---------------------------------------------------------------- local folders
def _scan_split(split_dir: Path, root: Path, folder_to_label: dict[str, int]) -> dict[str, list]:
    """Lists images of split_dir/<class>/ (sorted, so the order is reproducible); ignores other files loudly and
    hidden ones silently."""
    paths, labels, ids, ignored = [], [], [], []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p, split_dir)):
        found = 0
        for f in sorted(class_dir.rglob("*")):
            if not f.is_file() or is_hidden(f, class_dir):
                continue
            if f.suffix.lower() not in IMAGE_EXTENSIONS or not is_utf8(str(f.resolve())):
                ignored.append(f)
                continue
            paths.append(str(f.resolve()))
            labels.append(folder_to_label[class_dir.name])
            ids.append(f.relative_to(root).as_posix())
            found += 1
        if found == 0:
            raise DataError(
                f"class folder {escape_path(class_dir)} contains no images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
    if not paths:
        raise DataError(
            f"{escape_path(split_dir)} has no class folders with images; expected "
            f"{escape_path(split_dir.name)}/<class>/<images>"
        )
    ignored += [f for f in split_dir.iterdir() if f.is_file() and not is_hidden(f, split_dir)]
    if ignored:
        logger.warning(
            "Ignored %d non-image file(s) (or ones whose name is not UTF-8) under %s, e.g. %s",
            len(ignored),
            escape_path(split_dir),
            escape_path(ignored[0].name),
        )
    return {"image": paths, "label": labels, "image_id": ids}


def _load_folder(root: Path, folder_names: list[str], class_names: list[str]) -> datasets.DatasetDict:
    train_dir, val_dir = find_split_dirs(root)
    folder_to_label = {f: i for i, f in enumerate(folder_names)}
    for split_dir in (train_dir, val_dir):
        unknown = [f for f in class_folders(split_dir) if f not in folder_to_label]
        if unknown:
            raise DataError(
                f"{len(unknown)} unknown class folder(s) in {escape_path(split_dir)}: {listing(unknown)}; "
                f"known: {listing(folder_names)}"
            )
    features = class_features(class_names)
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                _scan_split(split_dir, root, folder_to_label), features=features
            )
            for split, split_dir in (("train", train_dir), ("val", val_dir))
        }
    )


def _load_imagefolder(root: Path, class_names_file: str | None) -> datasets.DatasetDict:
    folders, names = imagefolder_classes(root, class_names_file)
    return _load_folder(root, folders, names)


def load_eval_folder(
    path: str | Path, class_names: list[str], class_names_file: str | None = None
) -> datasets.Dataset:
    """Usage: load_eval_folder("imagenette-shifted", class_names) -> a Dataset to evaluate on (e.g. --robustness_eval_dir).

    The folder is <class>/<images>, or holds val/ (validation/, test/) in that layout. Its class folders are matched
    to the training classes by name, as ImageNette/Imagewoof WordNet ids, or through class_names_file.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(
            f"evaluation folder {escape_path(root)} does not exist; pass a folder of <class>/<images>"
        )
    split_dir = next((root / n for n in VAL_SPLIT_NAMES if (root / n).is_dir()), root)
    folders = class_folders(split_dir)
    names = class_names_for(folders, class_names_file, f"the class folders of {escape_path(split_dir)}", 1)
    unknown = [f for f, n in zip(folders, names, strict=True) if n not in class_names]
    if unknown or not folders:
        raise DataError(
            f"{escape_path(split_dir)}: class folder(s) {', '.join(map(escape_path, unknown)) or '(none)'} "
            "are not training classes "
            f"({', '.join(class_names)})"
        )
    folder_to_label = {f: class_names.index(n) for f, n in zip(folders, names, strict=True)}
    return datasets.Dataset.from_dict(
        _scan_split(split_dir, root, folder_to_label), features=class_features(class_names)
    )


def _resolve_imagenette_root(
    data_dir: str | None, size: str, download: bool, name: str = "imagenette"
) -> Path:
    size = str(size)
    archives = FASTAI_DATASETS[name][1]
    if size not in archives:
        raise DataError(f"imagenette_size must be one of {', '.join(archives)}, got {size!r}")
    url, md5 = archives[size]
    found = imagenette_root(data_dir, size, name)
    if found is not None:
        return found
    if not download:
        raise DataError(no_imagenette_line(data_dir, size, name))
    base, folder = imagenette_base(data_dir, name), archive_folder(name, size)
    base.mkdir(parents=True, exist_ok=True)
    try:
        archive = Path(download_file(url, base / "downloads"))
    except OSError as err:  # ConnectionError (offline mode too), FileNotFoundError, TimeoutError
        raise DataError(
            f"could not download {url} ({type(err).__name__}: {' '.join(str(err).split())}); "
            f"check the connection (HF_HUB_OFFLINE), or extract the archive into {base} yourself"
        ) from err
    actual = md5sum(archive)
    if md5 is None:
        logger.warning(
            "%s: no published MD5 for this archive, so it is NOT verified (its md5 is %s)", url, actual
        )
    elif actual != md5:
        raise DataError(f"md5 mismatch for {archive}: expected {md5}, got {actual}; delete it and rerun")
    return safe_extract(archive, base, folder)


# ---------------------------------------------------------------- Hub datasets
@dataclasses.dataclass(frozen=True)
class HubColumns:
    """--dataset_config_name, --image_column_name, --label_column_name (None: load_dataset's default config, the
    columns guessed by type)."""

    config_name: str | None = None
    image: str | None = None
    label: str | None = None

    @classmethod
    def of(cls, data_args) -> HubColumns:
        return cls(data_args.dataset_config_name, data_args.image_column_name, data_args.label_column_name)


def image_label_columns(
    features: datasets.Features, name: str, image_column: str | None = None, label_column: str | None = None
) -> tuple[str, str]:
    """The (image, label) column names of a hub dataset, in memory or streamed: the ones named by
    --image_column_name / --label_column_name, else its Image column and its ClassLabel column."""
    for flag, given, kind in (
        ("--image_column_name", image_column, datasets.Image),
        ("--label_column_name", label_column, datasets.ClassLabel),
    ):
        if given is None:
            continue
        if given not in features:
            raise DataError(
                f"{flag} {given!r} is not a column of {name}; its columns: {', '.join(features)}."
            )
        if not isinstance(features[given], kind):
            raise DataError(
                f"{flag} {given!r} of {name} is not a {kind.__name__} column ({features[given]}); its "
                f"{kind.__name__} columns: {', '.join(_of_kind(features, kind)) or 'none'}."
            )
    image_col = image_column or next(iter(_of_kind(features, datasets.Image)), None)
    label_col = label_column or next(iter(_of_kind(features, datasets.ClassLabel)), None)
    if image_col is None or label_col is None:
        raise DataError(
            f"hub dataset {name} needs an Image column and a ClassLabel column; its features: {features}"
        )
    return image_col, label_col


def _of_kind(features: datasets.Features, kind) -> list[str]:
    return [column for column, feature in features.items() if isinstance(feature, kind)]


def standard_columns(ds, image_col: str, label_col: str):
    """Keep only the image and label columns, named `image` and `label` (a Dataset or an IterableDataset)."""
    ds = ds.select_columns([image_col, label_col])
    return ds.rename_columns({c: n for c, n in ((image_col, "image"), (label_col, "label")) if c != n})


def _load_hub(
    name: str, data_dir: str | None, class_names_file: str | None = None, columns: HubColumns | None = None
) -> datasets.DatasetDict:
    from clip_lora import offline  # an unreachable Hub: the datasets cache, without minutes of retries

    columns = columns or HubColumns()
    offline.before_hub_load(name)
    try:
        where = {"cache_dir": data_dir} if data_dir else {}
        config = {"name": columns.config_name} if columns.config_name else {}
        raw = datasets.load_dataset(name, **config, **where)
    except OSError as err:  # DatasetNotFoundError, ConnectionError (offline), a missing local file
        raise DataError(
            f"--dataset_name {name!r} is not imagenette, an existing folder or a hub dataset reachable here "
            f"({type(err).__name__}: {' '.join(str(err).split())[:160]}); check the name or the path"
        ) from None
    if "train" not in raw:
        raise DataError(f"hub dataset {name} has no train split (splits: {', '.join(raw)})")
    val_name = next((n for n in VAL_SPLIT_NAMES if n in raw), None)
    if val_name is None:
        raise DataError(f"hub dataset {name} has no validation/val/test split (splits: {', '.join(raw)})")
    image_col, label_col = image_label_columns(raw["train"].features, name, columns.image, columns.label)
    names = class_names_for(raw["train"].features[label_col].names, class_names_file, f"hub dataset {name}")
    out = {}
    for key, split in (("train", "train"), ("val", val_name)):
        ds = standard_columns(raw[split], image_col, label_col)
        ds = ds.add_column("image_id", [f"{split}/{i}" for i in range(len(ds))])
        out[key] = ds.cast(class_features(names))
    return datasets.DatasetDict(out)


# ---------------------------------------------------------------- splitting and subsetting
def _dev_indices(labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Stratified dev indices: round(ratio * N) in total, spread over classes by largest remainder."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = ratio * counts
    take = np.floor(quotas).astype(int)  # ratio <= 0.5, so every class keeps at least one train image
    extra = max(1, round(ratio * len(labels))) - int(take.sum())
    order = sorted(range(len(classes)), key=lambda i: (-(quotas[i] - math.floor(quotas[i])), rng.random()))
    for i in order:
        if extra <= 0:
            break
        if take[i] < counts[i] - 1:
            take[i] += 1
            extra -= 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int)


def few_shot_indices(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """K per class (a class with fewer keeps all), seeded; for one seed the K-sample grows with K (nested)."""
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:shots] for c in np.unique(labels)]
    short = [int(c) for c, idx in zip(np.unique(labels), picked, strict=True) if len(idx) < shots]
    if short:
        logger.warning(
            "shots_per_class=%d: class(es) %s have fewer train images; all of them are used", shots, short
        )
    return np.sort(np.concatenate(picked))


def _subset(ds: datasets.Dataset, n: int | None, seed: int) -> datasets.Dataset:
    """First n of a seeded class-interleaved shuffle (balanced and nested: the n-subset grows with n)."""
    if n is None or n >= len(ds):
        return ds
    labels = np.asarray(ds["label"])
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    interleaved = [i for rank in itertools.zip_longest(*per_class) for i in rank if i is not None]
    return ds.select(sorted(interleaved[:n]))


def load_splits(
    dataset_name: str = "imagenette",
    data_dir: str | None = None,
    imagenette_size: str = "full",
    dev_split_ratio: float = 0.05,
    seed: int = 42,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    download: bool = True,
    class_names_file: str | None = None,
    shots_per_class: int | None = None,
    hub_columns: HubColumns | None = None,
) -> datasets.DatasetDict:
    """Usage: load_splits("imagenette", data_dir="data") -> DatasetDict(train, dev, val).

    dataset_name is "imagenette" or "imagewoof", a local train/<class>/, val/<class>/ folder, or a Hub dataset id.
    shots_per_class K keeps K train images per class (seeded), sampled after dev is carved.
    The dev split (ratio in (0, 0.5]) is carved from train, stratified by label and seeded.
    """
    if not 0 < dev_split_ratio <= 0.5:
        raise DataError(
            f"dev_split_ratio must be in (0, 0.5] (selection needs a dev set), got {dev_split_ratio}"
        )
    if dataset_name.lower() in FASTAI_DATASETS:
        classes = FASTAI_DATASETS[dataset_name.lower()][0]
        root = _resolve_imagenette_root(data_dir, imagenette_size, download, dataset_name.lower())
        # --class_names_file maps the WordNet folders here too (else: the dataset's own words).
        names = (
            class_names_for(list(classes), class_names_file, f"{dataset_name} ({escape_path(root)})")
            if class_names_file
            else list(classes.values())
        )
        splits = _load_folder(root, list(classes), names)
    else:
        where = sources.resolve(dataset_name, "--dataset_name", error=DataError)
        if isinstance(where, Path):
            splits = _load_imagefolder(where, class_names_file)
        else:
            splits = _load_hub(dataset_name, data_dir, class_names_file, hub_columns)
    train = splits["train"]
    labels = np.asarray(train["label"])
    present = [train.features["label"].names[i] for i in np.unique(labels)]
    if len(present) < MIN_CLASSES:  # a one-class "classifier" trains nothing and scores 1.0
        raise ClassNameError(
            f"{dataset_name}: only {len(present)} class has training images ({', '.join(map(repr, present))}); "
            f"a classifier needs at least {MIN_CLASSES}: add class folders."
        )
    dev_idx = _dev_indices(labels, dev_split_ratio, seed)
    if len(dev_idx) == 0:
        raise DataError(
            f"train split ({len(train)} images) is too small for a dev split; add images per class"
        )
    train_idx = np.setdiff1d(np.arange(len(train)), dev_idx)
    if shots_per_class:  # sampled after the dev split, so dev is the same for every K
        train_idx = train_idx[few_shot_indices(labels[train_idx], shots_per_class, seed)]
    return datasets.DatasetDict(
        {
            "train": _subset(train.select(train_idx), max_train_samples, seed),
            "dev": _subset(train.select(dev_idx), max_eval_samples, seed),
            "val": _subset(splits["val"], max_eval_samples, seed),
        }
    )
