"""The bad-input corpus: every case ends in one exact outcome, through the console entry `train_clip_lora.cli`.

A user error prints ONE line, `error: ...`, that names the file, flag or value and says what to do, with no
traceback, and exits 2. The image cases (a counted skip, or a used, RGB-converted image) are in test_bad_images.py.

Run: python -m pytest tests/test_bad_inputs.py -q
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import datasets
import pytest

from clip_lora import data
from clip_lora.testing_utils import make_image_folder, tiny_clip_config
from testing_utils import WNIDS, fake_hub, smoke_argv, tar_dir, unsafe_archive, user_error

pytestmark = pytest.mark.usefixtures("image_check_cache")  # the verdict cache stays in tmp_path


@pytest.fixture()
def small_data(tmp_path) -> Path:
    """Two ImageNette classes, 4 train + 2 val images each: enough for every layout case."""
    return make_image_folder(tmp_path / "data", WNIDS[:2], train_per_class=4, val_per_class=2, size=16)


# ---------------------------------------------------------------- data layout and sources
def _break(root: Path, case: str) -> None:
    if case == "empty_class_folder":
        shutil.rmtree(root / "train" / WNIDS[1])
        (root / "train" / WNIDS[1]).mkdir()
    elif case == "unknown_class_folder":
        shutil.copytree(root / "val" / WNIDS[0], root / "val" / "n99999999")
    elif case == "no_train":
        shutil.rmtree(root / "train")
    elif case == "no_val":
        shutil.rmtree(root / "val")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty_class_folder", "error: class folder {root}/train/n02102040 contains no images (.bmp, .gif"),
        (
            "unknown_class_folder",
            "error: 1 unknown class folder(s) in {root}/val: n99999999; known: n01440764,",
        ),
        ("no_train", "error: {root} has no train/ folder; expected the layout train/<class>/, val/<class>/"),
        (
            "no_val",
            "error: {root} has no val/ (or validation/, test/) folder; expected the layout train/<class>/",
        ),
    ],
)
def test_broken_layout(case, message, small_data, tiny_model_dir, tmp_path, capsys):
    _break(small_data, case)
    # no_train: as a generic imagefolder (for --dataset_name imagenette a folder without train/ is "no data here")
    extra = ("--dataset_name", str(small_data)) if case == "no_train" else ()
    line = user_error(smoke_argv(tiny_model_dir, small_data, tmp_path / "out", *extra), capsys)
    assert line.startswith(message.format(root=small_data))


def test_empty_data_dir_with_download_disabled(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = user_error(smoke_argv(tiny_model_dir, tmp_path / "empty", tmp_path / "out"), capsys)
    assert line == (
        f"error: no ImageNette data in {tmp_path / 'empty'} (looked for train/ and imagenette2/train/); "
        "pass --data_dir pointing at an extracted imagenette2 folder or allow download"
    )


def test_unknown_dataset_name(tmp_path, capsys):
    line = user_error(["--dataset_name", "imagenet_typo", "--output_dir", str(tmp_path / "out")], capsys)
    assert line.startswith(
        "error: --dataset_name 'imagenet_typo' is not imagenette, an existing folder or a hub"
    )
    assert line.endswith("check the name or the path")


def test_hub_dataset_without_label_names(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(datasets, "load_dataset", lambda name, **kw: fake_hub(with_label=False))
    line = user_error(["--dataset_name", "someone/unlabelled", "--output_dir", str(tmp_path / "out")], capsys)
    assert line.startswith(
        "error: hub dataset someone/unlabelled needs an Image column and a ClassLabel column"
    )


# ---------------------------------------------------------------- flags and recipes
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--lora_r", "0"], "error: --lora_r 0 must be a positive integer, e.g. 16."),
        (["--lora_towers", "visoin"], "error: --lora_towers 'visoin' is not one of both, vision, text."),
        (
            ["--prompt_template", "a photo"],
            "error: --prompt_template 'a photo' has no '{}' for the class name; use e.g. 'a photo of a {}.'",
        ),
        (["--on_bad_image", "ignore"], "error: --on_bad_image 'ignore' is not one of skip, error."),
        (["--dev_split_ratio", "0.9"], "error: --dev_split_ratio 0.9 must be in (0, 0.5]; e.g. 0.05."),
        (
            ["--lora_rank", "4"],
            "error: unknown argument(s): --lora_rank 4 (did you mean --lora_r?); see --help for the valid flags.",
        ),
    ],
    ids=[
        "lora_r_0",
        "towers_typo",
        "template_without_braces",
        "on_bad_image_typo",
        "dev_ratio",
        "unknown_flag",
    ],
)
def test_bad_flag_value(argv, expected, capsys):
    assert user_error(argv, capsys) == expected


def test_flag_of_the_wrong_type_is_one_error_line(capsys):
    line = user_error(["--lora_r", "sixteen"], capsys)
    assert (
        line
        == "error: argument --lora_r/--lora-r: invalid int value: 'sixteen'; see `clip-lora train --help`."
    )


def test_invalid_yaml_recipe(tmp_path, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("lora_r: [1,\n")
    line = user_error([str(recipe)], capsys)
    assert line.startswith(f"error: cannot read recipe {recipe}: ") and line.endswith(
        "fix the file or pass flags instead."
    )


def test_unknown_yaml_key(tmp_path, capsys):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("lora_rank: 4\nlearning_rate: 0.001\n")
    assert user_error([str(recipe)], capsys) == (
        f"error: recipe {recipe}: unknown key 'lora_rank' (did you mean lora_r?); a key is a flag's exact name "
        "without -- (see `clip-lora train --help`)."
    )


def test_target_module_not_in_the_model(small_data, tiny_model_dir, tmp_path, capsys):
    argv = smoke_argv(tiny_model_dir, small_data, tmp_path / "out", "--lora_target_modules", "q_proj,qkv")
    assert user_error(argv, capsys) == (
        "error: --lora_target_modules qkv not found in CLIPModel; "
        "CLIP's attention projections are q_proj,k_proj,v_proj,out_proj (MLP: fc1,fc2)."
    )


# ---------------------------------------------------------------- output dir
def test_unwritable_output_dir(small_data, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "run"  # root ignores permission bits; a file in the path stops everyone
    line = user_error(smoke_argv(tiny_model_dir, small_data, out), capsys)
    assert line == f"error: --output_dir {out} is not writable (Not a directory); choose another one."


def test_finished_output_dir_without_overwrite(small_data, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".run_complete").write_text("finished\n")  # the marker a finished run writes last
    line = user_error(smoke_argv(tiny_model_dir, small_data, tmp_path / "out"), capsys)
    assert line == (
        f"error: {tmp_path / 'out'} already holds a finished run; pass --overwrite_output_dir to "
        "replace it or choose another --output_dir."
    )


# ---------------------------------------------------------------- models and adapters
def _other_base_adapter(path: Path) -> None:
    from transformers import CLIPModel

    from clip_lora.modeling import apply_lora

    config = tiny_clip_config(vocab_size=514)
    config.vision_config.hidden_size = config.text_config.hidden_size = 48  # a different base model
    apply_lora(CLIPModel(config), 4, 8, 0.0, ["q_proj", "v_proj"]).save_pretrained(path)


@pytest.mark.parametrize("case", ["other_base_model", "no_adapter_config", "pickle_only", "missing_model"])
def test_unusable_model_or_adapter(case, small_data, tiny_model_dir, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    if case == "other_base_model":
        _other_base_adapter(adapter)
    elif case == "no_adapter_config":
        (adapter / "adapter_model.safetensors").write_bytes(b"")
    elif case == "pickle_only":
        (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
        (adapter / "adapter_model.bin").write_bytes(b"a pickle that is never unpickled")
    model = tmp_path / "nowhere" if case == "missing_model" else tiny_model_dir
    extra = () if case == "missing_model" else ("--adapter_name_or_path", str(adapter), "--do_train", "false")
    line = user_error(smoke_argv(model, small_data, tmp_path / "out", *extra), capsys)
    expected = {
        "other_base_model": f"error: adapter {adapter} does not fit this base model (size mismatch for ",
        "no_adapter_config": f"error: {adapter} has no adapter_config.json; pass the folder a training run wrote",
        "pickle_only": f"error: {adapter} has no adapter_model.safetensors (pickle .bin adapters are refused",
        "missing_model": f"error: --model_name_or_path {tmp_path / 'nowhere'}: no such folder; ",
    }[case]
    assert line.startswith(expected)
    if case == "other_base_model":
        assert line.endswith("pass the --model_name_or_path it was trained on.")


# ---------------------------------------------------------------- downloads and archives
@pytest.fixture()
def served_archive(tmp_path, monkeypatch):
    """Point the '320' ImageNette archive at a local file (data.download_file copies it); returns the setter."""
    state = {}

    def fake_download(url, cache_dir):
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        return shutil.copy(state["archive"], Path(cache_dir) / Path(url).name)

    def serve(archive: Path, md5: str):
        state["archive"] = archive
        monkeypatch.setitem(
            data.IMAGENETTE_ARCHIVES, "320", ("https://example.invalid/imagenette2-320.tgz", md5)
        )

    monkeypatch.setattr(data, "download_file", fake_download)
    return serve


def _archive(tmp_path: Path) -> tuple[Path, str]:
    make_image_folder(tmp_path / "src" / "imagenette2-320", WNIDS[:2], 4, 2, size=16)
    tgz = tmp_path / "imagenette2-320.tgz"
    return tgz, tar_dir(tmp_path / "src", tgz)


def test_checksum_mismatch(served_archive, tiny_model_dir, tmp_path, capsys):
    tgz, md5 = _archive(tmp_path)
    served_archive(tgz, "0" * 32)
    cache = tmp_path / "cache"
    argv = smoke_argv(
        tiny_model_dir, cache, tmp_path / "out", "--download", "true", "--imagenette_size", "320"
    )
    line = user_error(argv, capsys)
    assert (
        line == f"error: md5 mismatch for {cache / 'downloads' / tgz.name}: expected {'0' * 32}, got {md5}; "
        "delete it and rerun"
    )


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_archive_member_outside_the_target_is_refused(kind, served_archive, tiny_model_dir, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    tgz = tmp_path / "imagenette2-320.tgz"
    served_archive(tgz, unsafe_archive(tgz, kind, outside))
    cache = tmp_path / "a" / "cache"
    line = user_error(
        smoke_argv(tiny_model_dir, cache, tmp_path / "out", "--download", "true", "--imagenette_size", "320"),
        capsys,
    )
    assert line.startswith(f"error: refusing unsafe archive {cache / 'downloads' / tgz.name}: member ")
    assert line.endswith("delete it and check its source") and list(outside.iterdir()) == []


def test_interrupted_download_leaves_a_partial_file_that_the_rerun_replaces(tmp_path, monkeypatch):
    """A killed download leaves <hash>.incomplete; the rerun starts it over and the result passes the MD5 check."""
    import functools
    import http.server
    import threading

    from datasets.utils.file_utils import hash_url_to_filename

    tgz, md5 = _archive(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tgz.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{tgz.name}"
    monkeypatch.setitem(data.IMAGENETTE_ARCHIVES, "320", (url, md5))
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    partial = downloads / f"{hash_url_to_filename(url)}.incomplete"
    partial.write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 3])
    try:
        splits = data.load_splits(
            "imagenette", data_dir=str(tmp_path / "cache"), dev_split_ratio=0.25, imagenette_size="320"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert len(splits["val"]) == 4 and not partial.exists()
    assert hashlib.md5((downloads / hash_url_to_filename(url)).read_bytes()).hexdigest() == md5
    with tarfile.open(downloads / hash_url_to_filename(url)) as tar:
        assert "imagenette2-320/train" in tar.getnames()


# ---------------------------------------------------------------- sharing
def test_push_to_hub_without_a_token(small_data, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    line = user_error(
        smoke_argv(tiny_model_dir, small_data, tmp_path / "out", "--push_to_hub", "true"), capsys
    )
    assert line.startswith(
        "error: --push_to_hub needs a Hugging Face token with write access: run `hf auth login`"
    )
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
