"""Where a data set's images are and which classes it holds, read from the file system alone (no datasets, numpy or
torch), so the CLI can answer a wrong folder before the heavy libraries load (clip_lora/input_checks.py) and the
loader (clip_lora/data.py) finds the same folders with the same messages.

    train_dir, val_dir = find_split_dirs(Path("data/pets"))              # DataError when train/ or val/ is missing
    names = class_names_for(class_folders(train_dir), None, "the class folders of data/pets/train")
    root = imagenette_root("data", "320", "imagenette")                 # the extracted folder, or None
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from clip_lora import sources
from clip_lora.artifacts import escape_path
from clip_lora.class_names import MIN_CLASSES, normalise
from clip_lora.errors import DataError

logger = logging.getLogger(__name__)

IMAGENETTE_CLASSES: dict[str, str] = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
IMAGENETTE_ARCHIVES: dict[str, tuple[str, str]] = {
    "full": (
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
        "fe2fc210e6bb7c5664d602c3cd71e612",
    ),
    "320": (
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
        "3df6f0d01a2c9592104656642f5e78a3",
    ),
    "160": (
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
        "e793b78cc4c9e9a4ccc0c1155377a412",
    ),
}
# Imagewoof: fast.ai's ten dog breeds, same archive scheme. fast.ai publishes no MD5 for these archives, so none is
# written here (an invented one would be worse than none): the download is used unverified and a warning says so.
IMAGEWOOF_CLASSES: dict[str, str] = {
    "n02086240": "Shih-Tzu",
    "n02087394": "Rhodesian ridgeback",
    "n02088364": "beagle",
    "n02089973": "English foxhound",
    "n02093754": "Border terrier",
    "n02096294": "Australian terrier",
    "n02099601": "golden retriever",
    "n02105641": "Old English sheepdog",
    "n02111889": "Samoyed",
    "n02115641": "dingo",
}
IMAGEWOOF_ARCHIVES: dict[str, tuple[str, str | None]] = {
    "full": ("https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2.tgz", None),
    "320": ("https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-320.tgz", None),
    "160": ("https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-160.tgz", None),
}
FASTAI_DATASETS = {
    "imagenette": (IMAGENETTE_CLASSES, IMAGENETTE_ARCHIVES),
    "imagewoof": (IMAGEWOOF_CLASSES, IMAGEWOOF_ARCHIVES),
}
KNOWN_WNIDS = {**IMAGENETTE_CLASSES, **IMAGEWOOF_CLASSES}
VAL_SPLIT_NAMES = ("val", "validation", "test")
DEFAULT_IMAGENETTE_DIR = Path("~/.cache/clip_lora/imagenette")


# ---------------------------------------------------------------- ImageNette / Imagewoof: where the archive extracts to
def archive_folder(name: str, size: str) -> str:
    """The folder the fast.ai archive of `name` at `size` extracts to (imagenette2-320)."""
    url = FASTAI_DATASETS[name][1][str(size)][0]
    return url.rsplit("/", 1)[-1].removesuffix(".tgz")


def imagenette_base(data_dir: str | None, name: str = "imagenette") -> Path:
    return Path(data_dir or DEFAULT_IMAGENETTE_DIR.parent / name).expanduser()


def imagenette_root(data_dir: str | None, size: str, name: str = "imagenette") -> Path | None:
    """The extracted data under --data_dir: the folder itself when it holds train/, else its archive folder; None when
    neither holds it (a download may put it there)."""
    base = imagenette_base(data_dir, name)
    if (base / "train").is_dir():
        return base
    nested = base / archive_folder(name, size)
    # safe_extract renames a finished folder into place, so it is never partial
    return nested if (nested / "train").is_dir() else None


def no_imagenette_line(data_dir: str | None, size: str, name: str = "imagenette") -> str:
    """Why no data was found, when nothing will be downloaded: a --data_dir that is not there (with the nearest
    folders), or a folder without the extracted archive."""
    base, folder = imagenette_base(data_dir, name), archive_folder(name, size)
    if data_dir and not base.exists():
        return (
            f"{sources.missing_path_line('--data_dir', data_dir)} (nothing is downloaded: --download false)"
        )
    return (
        f"no {'ImageNette' if name == 'imagenette' else 'Imagewoof'} data in {base} (looked for train/ and "
        f"{folder}/train/); pass --data_dir pointing at an extracted {name}2 folder or allow download"
    )


# ---------------------------------------------------------------- local folders
def find_split_dirs(root: Path) -> tuple[Path, Path]:
    train = root / "train"
    val = next((root / n for n in VAL_SPLIT_NAMES if (root / n).is_dir()), None)
    if not train.is_dir() or val is None:
        missing = "train/" if not train.is_dir() else "val/ (or validation/, test/)"
        raise DataError(
            f"{escape_path(root)} has no {missing} folder; expected the layout train/<class>/, val/<class>/"
        )
    return train, val


def is_hidden(path: Path, below: Path) -> bool:
    """A file or folder whose name, or any folder's between `below` and it, starts with '.' (.DS_Store, .git,
    .ipynb_checkpoints, ._photo.jpg): never a class, never an image."""
    return any(part.startswith(".") for part in path.relative_to(below).parts)


def is_utf8(text: str) -> bool:
    """Names Python could not decode hold surrogates; datasets cannot store them, so such files are ignored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def class_folders(split_dir: Path) -> list[str]:
    folders = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    bad = [f for f in folders if not is_utf8(f)]
    if bad:
        raise DataError(
            f"class folder name(s) {', '.join(map(escape_path, bad))} in {escape_path(split_dir)} are not valid "
            "UTF-8; rename them"
        )
    return folders


def imagefolder_classes(root: Path, class_names_file: str | None) -> tuple[list[str], list[str]]:
    """(class folders of train/, their class names) of a local train/<class>/, val/<class>/ folder."""
    train_dir, _ = find_split_dirs(root)
    folders = class_folders(train_dir)
    if not folders:
        raise DataError(f"{train_dir} has no class folders; expected train/<class>/<image files>")
    return folders, class_names_for(
        folders, class_names_file, f"the class folders of {escape_path(train_dir)}"
    )


def control_classes(root: Path) -> tuple[Path, list[str], list[str]]:
    """(the folder holding the classes, its class folders, their names) of a --control_eval_dir: <class>/<images>
    or val/<class>/...; two classes or more, named by their folders."""
    split_dir = next((root / n for n in VAL_SPLIT_NAMES if (root / n).is_dir()), root)
    folders = class_folders(split_dir)
    if len(folders) < 2:
        raise DataError(f"--control_eval_dir {root} has {len(folders)} class folder(s); it needs two or more")
    return (
        split_dir,
        folders,
        class_names_for(folders, None, f"the class folders of --control_eval_dir {root}"),
    )


# ---------------------------------------------------------------- class names
def class_names_for(
    ids: list[str], class_names_file: str | None, where: str = "the classes", min_classes: int = MIN_CLASSES
) -> list[str]:
    """Folder or ClassLabel ids -> class names: through --class_names_file when given, else WordNet ids -> words;
    then through the class-name layer (NFC; at least two; no two the same), the pair named by their folders."""
    if class_names_file:
        names = names_from_file(class_names_file, ids)
        where = f"--class_names_file {class_names_file} for {where}"
    else:
        names = wnids_to_names(ids)
    return normalise(names, origins=ids, where=where, min_classes=min_classes)


def wnids_to_names(names: list[str]) -> list[str]:
    # Folders/labels named by ImageNette WordNet ids get readable names (CLIP prompts need words, not ids).
    return [KNOWN_WNIDS[n] for n in names] if all(n in KNOWN_WNIDS for n in names) else names


def names_from_file(class_names_file: str, folders: list[str]) -> list[str]:
    """Class names for folders (or ClassLabel ids) from a JSON object {id: name}; every id must be named."""
    try:
        mapping = json.loads(Path(class_names_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read class_names_file {class_names_file}: {err}") from err
    if not isinstance(mapping, dict):
        raise DataError(f"class_names_file {class_names_file} must hold a JSON object {{folder: class name}}")
    missing = [f for f in folders if f not in mapping]
    if missing:
        raise DataError(f"{class_names_file} has no name for folder(s) {', '.join(missing)}; add them")
    unused = sorted(set(mapping) - set(folders))
    if unused:  # one file may serve several data sets; a typo in a folder name shows up here
        logger.warning("%s names folder(s) this data set lacks: %s", class_names_file, ", ".join(unused[:10]))
    return [str(mapping[f]) for f in folders]
