"""Where a run's images came from, recorded in run_config.json so the model card can say it truthfully.

    describe_data("imagenette", "runs/demo-assets/imagenette", "320")
    # {"kind": "local_folder", "layout": "imagenette", "root": "/abs/runs/demo-assets/imagenette", "hub_id": None}

Three kinds: `fastai_archive` (the images sit in the folder the fast.ai archive extracts to, e.g. `imagenette2-320/`,
which is what the download writes), `hub` (a Hub dataset id) and `local_folder` (anything else, including a folder
in the ImageNette layout that did not come from the archive, such as `make demo`'s generated images). Only the first
two are public datasets a card may name in its metadata. `root` is the folder image ids are relative to (None for
Hub data): the card never prints it, the plots use it to find the images.
"""

from __future__ import annotations

from pathlib import Path

from clip_lora import data
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
