"""Flags are parsed and checked before torch, transformers, peft and datasets load (clip_lora/flag_schema.py,
clip_lora/verb_args.py): the quick check answers a mistake or --help at once, and never differently from the
full parse that follows.

Run: python -m pytest tests/test_flag_schema.py -q
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from clip_lora import flag_schema
from clip_lora.arguments import parse_args
from clip_lora.errors import ClipLoraError
from testing_utils import ROOT, all_doc_pages

HEAVY = ("torch", "transformers", "peft", "datasets", "accelerate", "evaluate")


def _packaged_fits_this_install() -> bool:
    """The packaged description is of one transformers (and Python) version; a clean install may resolve another."""
    packaged = json.loads(flag_schema.SCHEMA_FILE.read_text())["key"]
    here = flag_schema.key()
    return (packaged["transformers"], packaged["python"]) == (here["transformers"], here["python"])


@pytest.fixture(scope="module")
def light_env(tmp_path_factory) -> dict:
    """The environment of a fresh shell for the subprocess probes. On an install the packaged description does not
    fit, a user's first full parse writes one to their cache (flag_schema.remember): done here once, into a cache
    folder the probes are pointed at, so they test the second command a user types; the first is the full parse."""
    home = tmp_path_factory.mktemp("home")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    if not _packaged_fits_this_install():
        env["XDG_CACHE_HOME"] = str(home / "cache")
        subprocess.run([sys.executable, "-c", "from clip_lora.flag_schema import remember; remember()"],
                       env=env, check=True, timeout=300)  # fmt: skip
        assert list((home / "cache" / "clip_lora").glob("flag_schema-*.json"))
    return env


def test_the_packaged_description_is_this_parser():
    # Fails after a flag changes without `python -m clip_lora.flag_schema --write` (then only the speed is lost).
    packaged = json.loads(flag_schema.SCHEMA_FILE.read_text())
    stale = "clip_lora/flag_schema.json is stale: run `python -m clip_lora.flag_schema --write`"
    if (
        not _packaged_fits_this_install()
    ):  # transformers' own flags may differ; ours must not have changed since
        assert packaged["key"]["sources"] == flag_schema.key()["sources"], stale
        assert (
            flag_schema.load() is None or flag_schema.load()["key"] == flag_schema.key()
        )  # never the wrong one
        return
    assert packaged == json.loads(json.dumps(flag_schema.build())), stale
    assert flag_schema.load() == packaged


def _outcome(check, argv) -> str:
    try:
        check(argv)
    except ClipLoraError as err:
        return f"error: {err}"
    except SystemExit as done:  # argparse's own help
        return f"exit {done.code}"
    return "ok"


def _bad_values() -> list[list[str]]:
    """One wrong value for every flag the quick parse types, plus the mistakes users make."""
    corpus = []
    for action in flag_schema.load()["actions"]:
        flag = action["options"][0]
        if action["choices"]:
            corpus.append([flag, "no-such-choice"])
        elif action["type"] in ("int", "float"):
            corpus += [[flag, "x"], [flag, "-1"], [flag, "nan"]]
        elif action["type"] == "string_to_bool":
            corpus.append([flag, "maybe"])
        elif action["type"] == "str":
            corpus.append([flag, ""])
    return corpus + [
        ["--lora_rnk", "4"],
        ["--lora_", "4"],
        ["--learning_rat", "1e-4"],
        ["smok"],
        ["smoke", "--seed", "-3"],
        ["--seed", "1", "smoke"],
        ["--prompt_template", "a {} of {}"],
        ["--wise_alphas", "0,x"],
        ["--metric_for_best_model", "f1"],
        ["--num_train_epochs", "0"],
        ["--model_name_or_path", "./nowhere"],
        ["--dataset_name", "../nowhere"],
        ["--class_names_file", "/nowhere.json"],
        ["--prompt_templates", "nowhere.txt"],
        ["--lora_target_modules", "q_proj,;"],
    ]


def test_the_quick_check_refuses_only_what_the_full_parse_refuses_and_in_the_same_words(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    flag_schema.remember()  # an install the packaged description does not fit: as after a user's first full parse
    quick = []
    for argv in _bad_values():
        first = _outcome(flag_schema.precheck, argv)
        if first.startswith("error: "):
            quick.append(argv)
            assert _outcome(parse_args, argv) == first, argv
        else:  # what the quick check passes the full parse may still refuse (TrainingArguments' own checks)
            assert first == "ok", (argv, first)
    assert len(quick) > 150  # nearly every mistake is answered before the heavy imports
    (tmp_path / "mine.yaml").write_text("lora_r: 8\nlora_target_modules: [q_proj, v_proj]\nbf16: false\n")
    for argv in (
        ["mine.yaml", "--seed", "7"],
        ["--lora_r", "8", "--learning_rate", "0", "--report_to", "none"],
        ["--do_train", "0", "--no_load_best_model_at_end"],
    ):
        assert _outcome(flag_schema.precheck, argv) == "ok" == _outcome(parse_args, argv), argv


def test_arguments_never_imports_flag_schema():
    """flag_schema describes arguments' parser; the other direction would make the two an import circle."""
    tree = ast.parse((ROOT / "clip_lora" / "arguments.py").read_text())
    imported = {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    imported |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert not {name for name in imported if name.split(".")[-1] == "flag_schema"}


def test_without_a_description_for_this_install_the_full_parse_writes_one_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(
        flag_schema, "SCHEMA_FILE", tmp_path / "absent.json"
    )  # e.g. another transformers version
    assert flag_schema.load() is None and flag_schema.precheck(["--lora_r", "0"]) is False  # no quick check
    with pytest.raises(ClipLoraError, match="--lora_r 0 must be a positive integer"):
        parse_args(["--lora_r", "0"])
    import train_clip_lora
    from clip_lora import run_dir

    class Parsed(Exception):
        """Raised by the step after the parse: the run goes no further."""

    def stop(*args):
        raise Parsed

    monkeypatch.setattr(run_dir, "prepare", stop)
    with pytest.raises(Parsed):
        train_clip_lora.main(["--lora_r", "4", "--output_dir", str(tmp_path / "out")])
    assert flag_schema.cache_file(flag_schema.key()).is_file()
    with pytest.raises(ClipLoraError, match="--lora_r 0 must be a positive integer"):
        flag_schema.precheck(["--lora_r", "0"])  # quick from now on


PROBE = """
import io, sys, contextlib
from clip_lora.cli import main
for argv in {argvs!r}:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    print(code, len(out.getvalue()), (err.getvalue().strip().splitlines() or [""])[-1])
print(sorted(m for m in {heavy!r} if m in sys.modules))
"""


def test_help_and_mistakes_are_answered_without_importing_torch_transformers_peft_or_datasets(
    tmp_path, light_env
):
    argvs = [
        ["train", "--help"],
        ["eval", "--help"],
        ["train", "--help-all"],
        ["predict", "--help"],
        ["export", "--help"],
        ["sweep", "--help"],
        ["app", "--help"],
        ["train", "--lora_rnk", "4"],
        ["train", "smok"],
        ["train", "--lora_r", "sixteen"],
        ["eval", "--model_name_or_path", "runs/demo-assets/modl"],
        ["predict", "--labels", "cat,cat", "x.jpg"],
        ["export", "--adapter_name_or_path", "a", "--output_dir", str(tmp_path), "--labels", "x"],
        ["sweep", "--readme", "nowhere.json"],
        ["sweep", "--seeds", "0,0"],
        ["sweep", "--seeds", "0,1", "--lora_r", "0"],
        ["app", "./nowhere"],
    ]
    probe = PROBE.format(argvs=argvs, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=light_env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "[]", lines  # none of the heavy libraries was imported
    for argv, line in zip(argvs, lines, strict=False):
        code, printed, last = line.split(" ", 2)
        if {"--help", "--help-all"} & set(argv):
            assert code == "0" and int(printed) > 500 and last == "", (argv, line)
        else:
            assert code == "2" and last.startswith("error: "), (argv, line)
    assert (
        "no recipe 'smok' (did you mean smoke?): pass a file path or one of fewshot_16, imagenette_vitb16"
        in (lines[8])
    )


@pytest.mark.parametrize("argv", [["--help"], ["smoke", "--lora_rnk", "4"]])
def test_the_launched_script_answers_before_importing_the_heavy_libraries(tmp_path, argv, light_env):
    # `accelerate launch train_clip_lora.py ...` runs the file as __main__: its flag check comes before its imports.
    done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "train_clip_lora.py"), *argv],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=light_env)  # fmt: skip
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    if argv == ["--help"]:
        assert done.returncode == 0 and "--learning_rate" in done.stdout and not errors
    else:
        assert done.returncode == 2 and errors == [
            "error: unknown argument(s): --lora_rnk 4 (did you mean --lora_r?); see --help for the valid flags."
        ]


def test_the_readme_and_docs_show_only_commands_that_exist():
    pages = "\n".join(all_doc_pages().values())
    assert "python -m predict" not in pages and "python -m clip_lora predict" in pages
    assert "python sweep.py" not in pages  # the verb is clip-lora sweep (clip_lora/sweep.py is no script)
