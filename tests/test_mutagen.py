"""tools/mutagen.py, the generator behind `make mutation-generated`: one edit per mutant, each operator class found,
messages and guards never touched, every mutant compiles and differs, names that survive edits elsewhere.

Run: python -m pytest tests/test_mutagen.py -q
"""

from __future__ import annotations

import ast
import sys

from testing_utils import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import mutagen  # noqa: E402
from generated_mutants import TARGETS  # noqa: E402

SOURCE = '''import logging
logger = logging.getLogger(__name__)


def score(values, limit):
    """A docstring with < and + in it."""
    if not values or limit <= 0:
        raise ValueError(f"no values below {limit + 1}")
    logger.warning("dropping %d values", len(values) - 1)
    total = sum(v * 2 for v in values[1:limit] if v is not None)
    total += max(values, default=0)
    assert total >= 0, "negative"
    return round(total / len(values), 3), values.argmax()
'''


def generated(tmp_path, source=SOURCE):
    (tmp_path / "m.py").write_text(source)
    return mutagen.generate([mutagen.Target("m.py", ("tests/test_m.py",))], tmp_path)


def test_each_operator_class_is_generated_once_per_place(tmp_path):
    changes = {(m.original, m.mutated) for m in generated(tmp_path)}
    line = "if not values or limit <= 0:"
    assert (line, "if values or limit <= 0:") in changes  # `not` dropped
    assert (line, "if not values and limit <= 0:") in changes  # and / or
    assert (line, "if not values or limit < 0:") in changes  # comparison boundary
    assert (line, "if not values or limit <= 1:") in changes  # constant + 1
    total = "total = sum(v * 2 for v in values[1:limit] if v is not None)"
    assert (total, total.replace("v * 2", "v / 2")) in changes  # arithmetic
    assert (total, total.replace("[1:limit]", "[:limit]")) in changes  # slice bound dropped
    assert (total, total.replace("is not None", "is None")) in changes
    assert ("total += max(values, default=0)", "total -= max(values, default=0)") in changes
    assert ("total += max(values, default=0)", "total += min(values, default=0)") in changes
    assert (
        "total += max(values, default=0)",
        "total += max(values)",
    ) in changes  # a constant keyword dropped
    result = "return round(total / len(values), 3), values.argmax()"
    assert (result, "return round(3, total / len(values)), values.argmax()") in changes  # arguments swapped
    assert (result, result.replace("argmax", "argmin")) in changes


def test_messages_guards_and_docstrings_are_never_mutated(tmp_path):
    mutants = generated(tmp_path)
    touched = {m.line for m in mutants}
    assert touched == {7, 10, 11, 13}  # not the raise, the log line, the assert or the docstring
    assert all(m.function == "score" for m in mutants)


def test_every_mutant_compiles_differs_and_is_shown_as_it_is_applied(tmp_path):
    tree = ast.dump(ast.parse(SOURCE))
    for m in generated(tmp_path):
        mutated = m.apply(SOURCE)
        assert ast.dump(ast.parse(mutated)) != tree
        assert mutated.splitlines()[m.line - 1].strip() == m.mutated


def test_a_mutants_name_survives_an_edit_elsewhere_in_the_file(tmp_path):
    before = {m.key for m in generated(tmp_path)}
    after = {m.key for m in generated(tmp_path, "import os\n\n\ndef other():\n    return 1\n\n\n" + SOURCE)}
    assert before < after and len(after - before) == 2  # other()'s `1 -> 2` and `1 -> 0`


def test_the_targets_name_functions_and_tests_that_exist():
    for target in TARGETS:
        source = (ROOT / target.path).read_text()
        names = {name for name, _ in mutagen._functions(ast.parse(source))}
        assert target.functions is None or set(target.functions) <= names, target.path
        for test in target.tests:
            assert (ROOT / test.split("::")[0]).is_file(), test
    assert mutagen.generate(TARGETS, ROOT)  # and they generate mutants


def test_a_source_hash_test_never_decides_a_kill(tmp_path, monkeypatch):
    """A mutant "killed" only by a test that fails for any edit of the files it hashes counts as a survivor."""
    import mutation_runner

    tree = tmp_path / "tree"
    (tree / "clip_lora").mkdir(parents=True)
    (tree / "clip_lora" / "__init__.py").write_text(
        ""
    )  # the runner checks the project is imported from the tree
    (tree / "tests").mkdir()
    (tree / "tests" / "test_flag_schema.py").write_text(
        "def test_the_packaged_description_is_this_parser():\n    assert False, 'the sources changed'\n\n\n"
        "def test_behaviour():\n    pass\n"
    )
    monkeypatch.delitem(sys.modules, "clip_lora")  # the forked child imports the tree's
    # ... and the tree's test file: the suite's own test_flag_schema, imported earlier in this process, would be an
    # "import file mismatch" (a collection error, pytest exit 2) in the child
    monkeypatch.delitem(sys.modules, "test_flag_schema", raising=False)
    status, by = mutation_runner.run_pytest(
        tree, ["tests/test_flag_schema.py"], tmp_path / "log", timeout=120
    )
    assert (status, by) == ("survived", ""), (tmp_path / "log").read_text()[-2000:]
