"""The class-name layer (clip_lora/class_names.py) in every verb: names normalised (NFC), duplicates after
normalisation and after tokenization refused naming the pair, prompts checked against the text tower's limit (read
from the model's config), at least two classes, --class_names_file applied or refused for every layout.

Run: python -m pytest tests/test_class_names.py -q
"""

from __future__ import annotations

import json
import unicodedata
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import CLIPTokenizer

from clip_lora import class_names
from clip_lora.class_names import canonical, normalise, prompt_tokens, text_limit
from clip_lora.cli import run as run_verb
from clip_lora.data import load_splits
from clip_lora.errors import ClassNameError
from clip_lora.testing_utils import make_image_folder
from testing_utils import WNIDS, smoke_argv

pytestmark = pytest.mark.usefixtures("image_check_cache")
NFD_CAFE = unicodedata.normalize("NFD", "café")


def one_error_line(verb: str, argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert run_verb(verb, argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(lines) == 1 and err.rstrip().splitlines()[-1] == lines[0], err[
        -2000:
    ]
    return lines[0]


@pytest.mark.parametrize(
    "names, origins, message",
    [
        (["cat", "cat", "dog"], None, "'cat' is there twice"),
        (["café", NFD_CAFE], None, "'caf\\xe9' and 'cafe\\u0301' are the same class name 'café'"),
        (["dog", " dog "], None, "'dog' and ' dog ' are the same class name 'dog'"),
        (["dog", "dog"], ["n1", "n2"], "'n1' and 'n2' map to the same class name 'dog'"),
        (["dog", "dog"], ["dog", "n2"], "'dog' and 'n2' map to the same class name 'dog'"),  # one renamed
        (["cat", ""], None, "class name '' is empty"),
        (["cat", ""], ["n1", "n2"], "class name '' (from 'n2') is empty"),
        (["cat", ""], ["cat", ""], "class name '' is empty"),  # an origin equal to its name is not repeated
        (["cat"], None, "only 1 class ('cat')"),
        ([], None, "only 0 classes"),
    ],
)
def test_normalise_refuses_what_cannot_be_a_classifier(names, origins, message):
    with pytest.raises(ClassNameError, match=None) as refused:
        normalise(names, origins, where="W")
    assert str(refused.value).startswith("W: ") and message in str(refused.value), str(refused.value)
    assert normalise([NFD_CAFE, " tea "]) == ["café", "tea"]  # NFC, stripped


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return CLIPTokenizer.from_pretrained(tiny_model_dir)  # lowercases and normalises, as CLIP's does


@pytest.mark.parametrize(
    "names",
    [["Cat", "cat"], ["golden retriever", "golden  retriever"], ["DOG", "bird", "dog"], ["Café", NFD_CAFE]],
)
def test_names_the_tokenizer_cannot_tell_apart_are_refused_naming_both(tokenizer, names):
    with pytest.raises(ClassNameError) as refused:
        prompt_tokens(tokenizer, names, ["a photo of a {}."], 77)
    message = str(refused.value)
    assert "give the same prompt tokens" in message and "cannot tell them apart" in message
    colliding = [n for n in normalise(names) if n.lower().split() == normalise(names)[-1].lower().split()]
    assert all(repr(n) in message or ascii(n) in message for n in colliding), message


def test_prompts_are_checked_against_the_limit_read_from_the_model_config(tokenizer, tiny_model_dir):
    templates = ["a photo of a {}.", "itap of a {}."]
    name = "x" * 30  # the tiny tokenizer spells words out: "a photo of a xxx..." is ~45 tokens
    assert prompt_tokens(tokenizer, ["cat", name], templates, 77)["input_ids"].shape[0] == 4
    short = SimpleNamespace(config=SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=24)))
    assert text_limit(short, tokenizer) == 24  # the tokenizer states no limit of its own (~1e30): the model's
    with pytest.raises(
        ClassNameError, match=r"is 4\d tokens but the text tower takes at most 24; shorten the "
    ):
        prompt_tokens(tokenizer, ["cat", name], templates, text_limit(short, tokenizer))
    tokenizer_limit = SimpleNamespace(model_max_length=16)
    assert text_limit(short, tokenizer_limit) == 16 and text_limit(None, tokenizer) is None


def _folders(root, names, per_class=3):
    return make_image_folder(root, names, train_per_class=per_class, val_per_class=1, size=16)


def test_train_and_eval_refuse_class_folders_that_are_not_distinct_classes(tiny_model_dir, tmp_path, capsys):
    def train(root, *extra):
        argv = smoke_argv(tiny_model_dir, root, tmp_path / "out", "--dataset_name", str(root), *extra)
        return one_error_line("train", argv, capsys)

    line = train(_folders(tmp_path / "case", ["Cat", "cat", "dog"]))  # two folders on a case-sensitive disk
    assert "class names 'Cat' and 'cat' give the same prompt tokens ('a photo of a cat')" in line
    line = train(_folders(tmp_path / "nfc", ["café", NFD_CAFE]))  # one typed, one written by macOS
    assert "'cafe\\u0301' and 'caf\\xe9' are the same class name 'café'" in line  # folders in sorted order
    assert "only 1 class" in train(_folders(tmp_path / "one", ["cat"]))
    two = _folders(tmp_path / "two", ["a", "b"])
    mapping = tmp_path / "names.json"
    mapping.write_text(json.dumps({"a": "dog", "b": "dog"}))
    line = train(two, "--class_names_file", str(mapping))
    assert line.startswith(f"error: --class_names_file {mapping} for the class folders of ")
    assert "'a' and 'b' map to the same class name 'dog'" in line
    mapping.write_text(json.dumps({"a": "dog", "b": "a " + "very " * 40 + "long name"}))
    assert "tokens but the text tower takes at most 77; shorten the class name" in train(
        two, "--class_names_file", str(mapping)
    )
    # eval goes through the same layer
    argv = smoke_argv(tiny_model_dir, two, tmp_path / "eval", "--dataset_name", str(two))
    mapping.write_text(json.dumps({"a": "Dog", "b": "dog"}))
    assert "'Dog' and 'dog' give the same prompt tokens" in one_error_line(
        "eval", [*argv, "--class_names_file", str(mapping)], capsys
    )


def test_class_names_file_is_applied_or_refused_in_the_imagenette_layout(tiny_model_dir, tmp_path, capsys):
    data = _folders(tmp_path / "data", WNIDS[:2])
    mapping = tmp_path / "names.json"
    mapping.write_text(json.dumps({wnid: f"thing {i}" for i, wnid in enumerate(WNIDS)}))
    splits = load_splits(
        "imagenette", data_dir=str(data), dev_split_ratio=0.34, class_names_file=str(mapping)
    )
    assert splits["val"].features["label"].names == [f"thing {i}" for i in range(10)]
    mapping.write_text(
        json.dumps({**{wnid: f"thing {i}" for i, wnid in enumerate(WNIDS)}, WNIDS[1]: "thing 0"})
    )
    line = one_error_line(
        "train",
        smoke_argv(tiny_model_dir, data, tmp_path / "out", "--class_names_file", str(mapping)),
        capsys,
    )
    assert f"'{WNIDS[0]}' and '{WNIDS[1]}' map to the same class name 'thing 0'" in line


@pytest.mark.parametrize(
    "labels, message",
    [
        ("cat,cat,dog", "'cat' is there twice"),
        ("cat, dog ,cat", "'cat' is there twice"),
        (f"café,{NFD_CAFE},tea", "are the same class name 'café'"),
        ("cat", "only 1 class ('cat')"),
        (",,", "labels #1 (''), #2 (''), #3 ('') of 3 are blank"),
        (" ,dog", "label #1 (' ') of 2 is blank"),
        ("cat,dog,", "label #3 ('') of 3 is blank"),
        ("cat,\u200b,dog", "label #2 ('\\u200b') of 3 is blank"),  # invisible only: blank too
        ("cat,cat\u200b,dog", "'cat' and 'cat\\u200b' are the same class name 'cat'"),
        ("\U0001f408,\U0001f408\ufe0f", "'\\U0001f408' and '\\U0001f408\\ufe0f' are the same class name"),
        ("\ufeffdog,cat,dog", "'\\ufeffdog' and 'dog' are the same class name 'dog'"),
        ("soft\u00adhyphen,softhyphen", "'soft\\xadhyphen' and 'softhyphen' are the same class name"),
    ],
)
def test_predict_and_export_refuse_labels_that_are_not_distinct_classes(labels, message, tmp_path, capsys):
    image = tmp_path / "a.png"
    make_image_folder(tmp_path / "imgs", ["x"], 1, 1, size=8)
    image = next((tmp_path / "imgs").rglob("*.JPEG"))
    line = one_error_line("predict", ["--model_name_or_path", "m/m", "--labels", labels, str(image)], capsys)
    assert line.startswith(f"error: --labels {labels!r}: ") and message in line
    argv = ["--adapter_name_or_path", str(tmp_path), "--output_dir", str(tmp_path / "m"), "--labels", labels]
    assert message in one_error_line("export", argv, capsys)


INVISIBLE = {  # members of Unicode's Default_Ignorable_Code_Point class, each alone in a name that prints as "cat"
    "ZERO WIDTH SPACE": "\u200b",
    "ZERO WIDTH JOINER": "\u200d",
    "ZERO WIDTH NON-JOINER": "\u200c",
    "WORD JOINER": "\u2060",
    "SOFT HYPHEN": "\u00ad",
    "BOM": "\ufeff",
    "VARIATION SELECTOR-16": "\ufe0f",
    "VARIATION SELECTOR-17": "\U000e0100",
    "COMBINING GRAPHEME JOINER": "\u034f",
    "TAG LATIN SMALL LETTER A": "\U000e0061",
    "RIGHT-TO-LEFT MARK": "\u200f",
    "HANGUL FILLER": "\u3164",
}


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_names_that_differ_only_in_invisible_characters_are_one_name(char):
    for name in (f"ca{char}t", f"cat{char}", f"{char}cat"):
        assert canonical(name) == "cat" and normalise([name, "dog"]) == ["cat", "dog"]
        with pytest.raises(ClassNameError) as refused:
            normalise(["cat", name, "dog"], where="W")
        assert f"'cat' and {ascii(name)} are the same class name 'cat'" in str(refused.value), refused.value
    with pytest.raises(ClassNameError, match="is empty"):
        normalise([char, "dog"])


def test_emoji_with_and_without_its_variation_selector_and_nfd_are_one_name():
    cat_face = "\U0001f431"  # a default-emoji code point: U+FE0F changes nothing on screen
    assert normalise([cat_face + "\ufe0f", "dog"]) == [cat_face, "dog"]
    assert canonical("e\u200b\u0301") == "\u00e9"  # removal first: what is left composes, as it prints
    assert canonical(NFD_CAFE + "\u00ad") == "café" and canonical(" \ufeffcafé ") == "café"


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
    inserted=st.lists(st.tuples(st.integers(0, 12), st.sampled_from(sorted(INVISIBLE.values()))), max_size=4),
)
def test_invisible_characters_never_make_a_second_name(name, inserted):
    dressed = name
    for position, char in inserted:
        dressed = dressed[:position] + char + dressed[position:]
    assert canonical(dressed) == canonical(name)
    assert canonical(canonical(name)) == canonical(name)  # one form: normalising again changes nothing


@pytest.mark.parametrize(
    "folders, shown",
    [
        (["cat", "cat\u200b", "dog"], "'cat' and 'cat\\u200b'"),
        (["\U0001f431", "\U0001f431\ufe0f"], "'\\U0001f431' and '\\U0001f431\\ufe0f'"),
        (["caf\u00e9", NFD_CAFE, "tea"], "'cafe\\u0301' and 'caf\\xe9'"),
        (["dog", "\ufeffdog"], "'dog' and '\\ufeffdog'"),
    ],
)
def test_class_folders_that_print_the_same_are_refused_naming_both(tmp_path, folders, shown):
    root = _folders(tmp_path / "data", folders, per_class=2)
    with pytest.raises(ClassNameError) as refused:
        load_splits(str(root), dev_split_ratio=0.5)
    assert shown in str(refused.value) and "are the same class name" in str(refused.value), refused.value


def test_a_folder_name_with_invisible_characters_is_shown_and_prompted_without_them(tmp_path):
    root = _folders(tmp_path / "data", ["cat\u200d", "d\u00adog"], per_class=2)
    splits = load_splits(str(root), dev_split_ratio=0.5)
    assert splits["val"].features["label"].names == ["cat", "dog"]
    assert sorted(set(splits["val"]["label"])) == [0, 1]  # both folders' images kept, under the clean names


def test_predict_refuses_labels_that_tokenize_alike(tiny_model_dir, tmp_path, capsys):
    make_image_folder(tmp_path / "imgs", ["x"], 1, 1, size=8)
    image = next((tmp_path / "imgs").rglob("*.JPEG"))
    argv = ["--model_name_or_path", str(tiny_model_dir), "--labels", "Cat,cat,dog", str(image)]
    assert "class names 'Cat' and 'cat' give the same prompt tokens" in one_error_line(
        "predict", argv, capsys
    )


def test_a_tokenizer_limit_of_a_million_or_more_is_no_limit():
    # Tokenizers without a configured limit report ~1e30; the boundary: 10**6 means none, one less is a limit.
    assert class_names.text_limit(tokenizer=SimpleNamespace(model_max_length=class_names.UNBOUNDED)) is None
    assert (
        class_names.text_limit(tokenizer=SimpleNamespace(model_max_length=class_names.UNBOUNDED - 1))
        == 999_999
    )


def test_hub_classlabel_names_go_through_the_same_rule():
    from clip_lora.data import (
        class_names_for,
    )  # what _load_hub and the streamed loader call on ClassLabel names

    with pytest.raises(ClassNameError) as refused:
        class_names_for(["cat", "cat\u2060", "dog"], None, "hub dataset user/pets")
    assert "hub dataset user/pets: 'cat' and 'cat\\u2060' are the same class name 'cat'" in str(refused.value)
    assert class_names_for(["\ufeffcat", "dog\u200b"], None, "hub dataset user/pets") == ["cat", "dog"]
