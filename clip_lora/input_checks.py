"""A run's inputs as the file system shows them, judged before torch, transformers or datasets load.

    check_data(data_args)                 # the images' folder and its classes
    check_output_dir(training_args)       # a finished or locked --output_dir

`validation.check_run` calls these, so `clip-lora train` / `eval` answer a wrong folder in well under a second
(clip_lora/flag_schema.py runs the check before the heavy imports); the full parse runs them again, so the answer
cannot differ. Each check reuses the function the later step raises from (data_layout for the data, run_dir for the
output folder): the early line is the later line, only sooner. Paths to models and adapters go through
clip_lora/sources.py (a path that looks local is never sent to the Hub).
"""

from __future__ import annotations

import os
from pathlib import Path

from clip_lora import data_layout, run_dir, sources
from clip_lora.artifacts import escape_path
from clip_lora.errors import DataError


def check_data(data_args) -> None:
    """The folder the images come from, and the classes its folders name (two or more, distinct names): what
    data.load_splits would refuse first, without listing an image; the control set's classes too. A Hub dataset or a
    stream is judged when it loads."""
    control = getattr(data_args, "control_eval_dir", None)
    # (a control that is no folder: validation has named it already)
    if control and os.path.isdir(os.path.expanduser(control)):
        data_layout.control_classes(Path(control).expanduser())
    if getattr(data_args, "streaming", False):
        return
    name = str(data_args.dataset_name)
    if name.lower() in data_layout.FASTAI_DATASETS:
        _check_fastai_folder(data_args, name.lower())
        return
    where = sources.resolve(name, "--dataset_name", error=DataError)
    if not isinstance(where, str) and where.is_dir():
        data_layout.imagefolder_classes(where, data_args.class_names_file)


def _check_fastai_folder(data_args, name: str) -> None:
    size = str(data_args.imagenette_size)
    if size not in data_layout.FASTAI_DATASETS[name][1]:
        return  # the flag's own rule names the choices
    base = data_layout.imagenette_base(data_args.data_dir, name)
    if data_args.data_dir and base.exists():
        sources.check_readable("--data_dir", base, DataError)
    root = data_layout.imagenette_root(data_args.data_dir, size, name)
    if root is None:
        if not data_args.download:
            raise DataError(data_layout.no_imagenette_line(data_args.data_dir, size, name))
        return  # downloaded when the run starts
    if (
        data_args.class_names_file
    ):  # the fixed WordNet folders, named through the file (as data.load_splits does)
        classes = list(data_layout.FASTAI_DATASETS[name][0])
        where = f"{data_args.dataset_name} ({escape_path(root)})"
        data_layout.class_names_for(classes, data_args.class_names_file, where)


def check_output_dir(training_args) -> None:
    """A folder holding a finished run (or, for an evaluation, any run) and a folder another run holds the lock of,
    refused as run_dir.prepare would refuse them. Only the main process looks at the lock: under torchrun, rank 0
    may already hold it while another rank is still checking its flags. The probe holds a shared lock for the
    microseconds between its open and close."""
    out = training_args.output_dir
    if not out or not os.path.isdir(os.path.expanduser(out)):
        return
    if int(os.environ.get("RANK", "0")) == 0:
        run_dir.check_unlocked(os.path.expanduser(out))
    run_dir.check_reusable(
        os.path.expanduser(out), training_args.do_train, bool(training_args.overwrite_output_dir)
    )
