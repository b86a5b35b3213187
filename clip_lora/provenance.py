"""Where a run's images came from, recorded in run_config.json so the model card can say it truthfully.

    describe_data("imagenette", "runs/demo-assets/imagenette", "320")
    # {"kind": "local_folder", "layout": "imagenette", "root": "/abs/runs/demo-assets/imagenette", "hub_id": None}

Three kinds: `fastai_archive` (the images sit in the folder the fast.ai archive extracts to, e.g. `imagenette2-320/`,
which is what the download writes), `hub` (a Hub dataset id) and `local_folder` (anything else, including a folder
in the ImageNette layout that did not come from the archive, such as `make demo`'s generated images). Only the first
two are public datasets a card may name in its metadata. `root` is the folder image ids are relative to (None for
Hub data): the card never prints it, the plots use it to find the images.

`run_provenance(...)`, recorded as run_config.json's `provenance` and printed on the card, is what two runs are
compared by (`clip-lora compare`): library versions, this project's version and git commit (None outside a git
checkout), the batch as it ran (processes, per-device batch, accumulation, global batch, max_grad_norm, precision)
and a fingerprint of the data, `data_fingerprint(splits)`: the image count per split and a sha256 of the sorted list
of (image id, file size), per split and over all splits. Image ids are relative to the data folder, so the same files
anywhere give the same fingerprint; the dev split follows --seed, so two seeds share `files_sha256` (the same
images) and differ in their train / dev hashes (split differently). It also names the classes left without a
training image (`classes_without_training_images`: by --max_train_samples, --shots_per_class or skipped images),
which the run warns about and the card states: such a class is evaluated but never learned.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import datasets

from clip_lora import __version__, data
from clip_lora.errors import DataError

# The fast.ai archives as republished on the Hub by their packager (same releases, same splits).
FASTAI_HUB_IDS = {"imagenette": "frgfm/imagenette", "imagewoof": "frgfm/imagewoof"}
FASTAI_TITLES = {"imagenette": "ImageNette", "imagewoof": "Imagewoof"}


def describe_data(dataset_name: str, data_dir: str | None, imagenette_size: str | None = "full") -> dict:
    """The data source of a run (see the module docstring); never downloads anything."""
    name = str(dataset_name)
    if name.lower() in data.FASTAI_DATASETS:
        archive_url = data.FASTAI_DATASETS[name.lower()][1].get(str(imagenette_size), ("",))[0]
        archive_folder = archive_url.rsplit("/", 1)[-1].removesuffix(".tgz")
        try:
            root = data._resolve_imagenette_root(data_dir, str(imagenette_size), False, name.lower())
        except DataError:
            root = None
        if root is not None and root.name == archive_folder:
            return {
                "kind": "fastai_archive",
                "dataset": name.lower(),
                "archive": archive_url,
                "hub_id": FASTAI_HUB_IDS[name.lower()],
                "root": str(root.resolve()),
            }
        return {
            "kind": "local_folder",
            "layout": name.lower(),
            "hub_id": None,
            "root": str(root.resolve()) if root else None,
        }
    if Path(name).expanduser().is_dir():
        return {
            "kind": "local_folder",
            "layout": None,
            "hub_id": None,
            "root": str(Path(name).expanduser().resolve()),
        }
    return {"kind": "hub", "hub_id": name, "root": None}


def data_source(config: dict) -> dict:
    """The recorded source of a run_config.json, or (older runs) the best description its arguments allow."""
    return config.get("data_source") or describe_data(
        config.get("dataset_name", "imagenette"),
        config.get("data_dir"),
        config.get("imagenette_size", "full"),
    )


# ---------------------------------------------------------------- what a rerun needs: code, libraries, batch, data
LIBRARIES = ("torch", "transformers", "peft", "accelerate", "datasets")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def library_versions() -> dict:
    """Installed versions of the libraries whose behaviour shapes a run (None: not installed), and Python's."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return {**found, "python": platform.python_version()}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):  # no git, not a checkout, a hung filesystem
        return None
    return done.stdout.strip()


def code_version(root: Path = PROJECT_ROOT) -> dict:
    """This project's version, and its git commit when the code runs from a checkout of it (else None): an
    installed copy inside some other repository (a venv in a checkout) must not report that repository's commit."""
    toplevel = _git(root, "rev-parse", "--show-toplevel")
    if not toplevel or Path(toplevel).resolve() != root.resolve():
        return {"clip_lora": __version__, "git_commit": None, "git_dirty": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "clip_lora": __version__,
        "git_commit": _git(root, "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),  # tracked files edited since that commit
    }


def _file_size(image: dict) -> int | None:
    if image.get("bytes") is not None:
        return len(image["bytes"])
    try:
        return os.stat(image["path"]).st_size
    except (OSError, TypeError):  # gone since the image check, or no path at all
        return None


def _files(split) -> list[list]:
    """[image id, size in bytes] of every image of a split, without decoding one."""
    raw = split.select_columns(["image", "image_id"]).cast_column("image", datasets.Image(decode=False))
    return [
        [image_id, _file_size(image)]
        for batch in raw.iter(batch_size=1024)
        for image, image_id in zip(batch["image"], batch["image_id"], strict=True)
    ]


def _sha256(files: list[list]) -> str:
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda f: f[0]):
        digest.update((json.dumps(entry) + "\n").encode())  # one JSON line each: any id is unambiguous
    return digest.hexdigest()


def data_fingerprint(splits: dict) -> dict:
    """{split: {images, sha256}} and, over every split, `images` and `files_sha256` (a streamed split: images None)."""
    record, every = {}, []
    for name, split in splits.items():
        if not isinstance(split, datasets.Dataset):
            record[name] = {"images": None, "sha256": None, "streamed": True}
            continue
        files = _files(split)
        every += files
        record[name] = {"images": len(files), "sha256": _sha256(files)}
    return {
        "splits": record,
        "images": len(every),
        "files_sha256": _sha256(every),
        "classes_without_training_images": classes_without_images(splits.get("train")),
    }


def classes_without_images(split) -> list[str]:
    """The classes of a split's label space that have no image in it ([] for a streamed or absent split)."""
    if not isinstance(split, datasets.Dataset):
        return []
    present = set(split.unique("label"))
    return [name for i, name in enumerate(split.features["label"].names) if i not in present]


def run_provenance(training_args, precision: str, fingerprint: dict) -> dict:
    """run_config.json's `provenance`: versions, code, the batch as it ran and the data fingerprint."""
    processes = training_args.world_size
    per_device, accumulation = (
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
    )
    return {
        "versions": library_versions(),
        "code": code_version(),
        "batch": {
            "processes": processes,
            "per_device_train_batch_size": per_device,
            "gradient_accumulation_steps": accumulation,
            "global_batch_size": processes * per_device * accumulation,
            "max_grad_norm": training_args.max_grad_norm,
            "precision": precision,  # what accelerate runs: no (fp32), bf16, fp16
        },
        "data": fingerprint,
    }
