"""Fetching an archive once and unpacking it safely: the ImageNette download behind `data.load_splits`.

    path = download_file(url, cache_dir)          # datasets' downloader: *.incomplete temp file, progress bar, cache
    assert md5sum(Path(path)) == expected_md5
    root = safe_extract(Path(path), data_dir, "imagenette2-320")   # refuses absolute, '..', escaping links

This module imports no other project module.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

import datasets

from clip_lora.errors import DataError  # noqa: F401 - re-exported: raised here, caught in cli

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"


def download_file(url: str, cache_dir: Path) -> str:
    """Downloads url into cache_dir via datasets (temp *.incomplete file, progress bar); returns the local path."""
    from datasets.utils.file_utils import cached_path

    # use_etag=False: a finished download is reused without asking the server again (works offline).
    config = datasets.DownloadConfig(cache_dir=cache_dir, use_etag=False, download_desc=f"Downloading {url}")
    return cached_path(url, download_config=config)


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuses members that could write outside the target folder (absolute, '..', escaping links, devices)."""

    def escapes(name: str) -> bool:
        name = name.replace("\\", "/")
        return (
            name.startswith("/") or os.path.isabs(name) or ".." in PurePosixPath(os.path.normpath(name)).parts
        )

    problem = None
    if escapes(member.name) or ".." in PurePosixPath(member.name).parts:
        problem = "path outside the archive folder"
    elif member.issym() and escapes(os.path.join(os.path.dirname(member.name), member.linkname)):
        problem = f"symlink to {member.linkname}"
    elif member.islnk() and escapes(member.linkname):
        problem = f"hard link to {member.linkname}"
    elif not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        problem = "special file"
    if problem:
        raise DataError(
            f"refusing unsafe archive {archive}: member {member.name!r} is a {problem}; delete it and check its source"
        )


def safe_extract(archive: Path, data_dir: Path, folder: str) -> Path:
    # Extract into a scratch folder, then rename: the final folder appears only when complete.
    scratch = data_dir / f".extract-{folder}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    logger.info("Extracting %s into %s", archive, data_dir)

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        check_member(member, archive)  # runs before the member is written; data_filter is a second defence
        return tarfile.data_filter(member, dest)

    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter=check)  # one streaming pass over the (up to 1.5 GB) archive
    except (DataError, tarfile.TarError, EOFError) as err:
        shutil.rmtree(scratch, ignore_errors=True)
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"archive {archive} is damaged ({' '.join(str(err).split())}); delete it and rerun"
        ) from err
    if not (scratch / folder / "train").is_dir():
        shutil.rmtree(scratch, ignore_errors=True)
        raise DataError(f"archive {archive} has no {folder}/train folder; delete it and rerun")
    target = data_dir / folder
    shutil.rmtree(target, ignore_errors=True)
    os.replace(scratch / folder, target)
    shutil.rmtree(scratch, ignore_errors=True)
    (target / COMPLETE_MARKER).write_text(f"{archive.name}\n", encoding="utf-8")
    return target
