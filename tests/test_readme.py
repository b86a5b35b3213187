"""README.md is a front page: short, every link to docs/ lands on a page and heading that exist, its commands are the
ones CI and the venv need, and the smoke recipe's settings are stated as clip_lora/recipes/smoke.yaml sets them.

Run: python -m pytest tests/test_readme.py -q
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import yaml

from clip_lora import batching
from clip_lora.arguments import ARGUMENT_CLASSES
from testing_utils import DOCS, ROOT, all_doc_pages, doc_page

FRONT_PAGE_MAX_LINES = 200
DOC_PAGES = ("arguments", "outputs", "scale", "reliability", "performance", "evidence", "contributing")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return {_anchor(m[1]) for m in re.finditer(r"^#+ (.+)$", outside_code, re.M)}


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)


def test_the_readme_is_a_front_page_of_at_most_200_lines():
    assert len(doc_page("README").splitlines()) <= FRONT_PAGE_MAX_LINES


def test_every_relative_link_of_the_readme_and_docs_lands_on_a_file_and_heading_that_exist():
    checked = 0
    for name, text in all_doc_pages().items():
        here = ROOT if name == "README" else DOCS
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http(s):, mailto:
                continue
            path, _, anchor = target.partition("#")
            page = (here / path).resolve() if path else here / f"{name}.md"
            if name == "README" and not path:
                page = ROOT / "README.md"
            assert page.exists(), f"{name}: link to {target}: no such file"
            if anchor:
                assert anchor in _anchors(page.read_text()), f"{name}: link to {target}: no such heading"
            checked += 1
    assert checked > 20


def test_the_readme_links_every_docs_page_and_contributing_covers_mutation_testing():
    readme = doc_page("README")
    for page in DOC_PAGES:
        assert f"](docs/{page}.md)" in readme, page
    contributing = doc_page("contributing")
    assert "## Mutation testing" in contributing and "make mutation" in contributing
    assert "](library_internals.md)" in contributing


def test_the_readme_test_command_is_the_one_ci_runs():
    setup = _bash_blocks(doc_page("README"))[0]
    commands = [line.split("#")[0].strip() for line in setup.splitlines()]
    assert commands == ["make demo", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci


def test_every_readme_block_using_clip_lora_activates_the_venv_first():
    """clip-lora is installed in .venv/bin only: a block that calls it must activate the venv before its first use."""
    blocks = [block for block in _bash_blocks(doc_page("README")) if re.search(r"^clip-lora ", block, re.M)]
    assert len(blocks) >= 5  # predict, app, eval, export, compare
    for block in blocks:
        lines = block.splitlines()
        first_use = next(i for i, line in enumerate(lines) if line.startswith("clip-lora "))
        assert any(line.startswith(". .venv/bin/activate") for line in lines[:first_use]), block


def _field_defaults() -> dict:
    fields = {f.name: f for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls)}
    return {
        name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for name, f in fields.items()
    }


def _same(text: str, value) -> bool:
    if isinstance(value, bool):
        return text == str(value).lower()
    if not isinstance(value, (int, float)):
        return text == str(value)
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def test_the_smoke_recipe_table_is_exactly_what_smoke_yaml_changes():
    """docs/arguments.md lists every setting smoke.yaml gives another value than the script's default, and no other."""
    recipe = yaml.safe_load((ROOT / "clip_lora" / "recipes" / "smoke.yaml").read_text())
    defaults = _field_defaults()
    lines = doc_page("arguments").splitlines()
    start = lines.index("| setting | the script's default | `smoke` |") + 2
    rows = {}
    for line in itertools.takewhile(lambda text: text.startswith("|"), lines[start:]):
        flag, default, smoke = (cell.strip() for cell in line.strip("|").split(" | "))
        rows[re.fullmatch(r"`([^`]+)`", flag)[1]] = (default, re.fullmatch(r"`([^`]*)`", smoke)[1])
    changed = {key for key, value in recipe.items() if value != defaults[key]}  # None: derived, so stated
    assert set(rows) == changed - {"output_dir"}, (sorted(rows), sorted(changed))
    for flag, (default, smoke) in rows.items():
        assert _same(smoke, recipe[flag]), (flag, smoke, recipe[flag])
        if (
            value := re.fullmatch(r"`([^`]*)`", default)
        ) is not None:  # a value, not words (a derived default)
            assert _same(value[1], defaults[flag]), (flag, default, defaults[flag])
    assert rows["global_batch_size"][0].startswith(f"{batching.DEFAULT_GLOBAL_BATCH}, the seed's")
