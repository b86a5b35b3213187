"""The dependency range is a promise, tested at both ends: setup.cfg's floors are constraints-oldest.txt's pins.

`make test` runs the suite at what a clean install resolves today; `make test-oldest` installs the floors
(`pip install -c constraints-oldest.txt`) and runs the suite's core there, with CLIP_LORA_OLDEST=1 so that this
file also checks that the versions really installed are the floors.

Run: python -m pytest tests/test_versions.py -q
"""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints-oldest.txt"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~; \[]", requirement, maxsplit=1)[0].strip().lower().replace("-", "_")


def install_requires() -> dict[str, str]:
    """{package: its requirement} from setup.cfg."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]
    return {_name(line): line for line in lines}


def pins() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()]
    return {_name(line): line.split("==")[1] for line in lines if line}


def floors() -> dict[str, str]:
    """{package: the lowest version setup.cfg allows} plus python."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    found = {}
    for name, requirement in install_requires().items():
        match = re.search(r">=\s*([\w.]+)", requirement)
        assert match, f"setup.cfg: {requirement} has no lower bound"
        found[name] = match.group(1)
    found["python"] = re.search(r">=\s*([\d.]+)", config["options"]["python_requires"]).group(1)
    return found


def test_every_floor_is_pinned_in_the_constraints_file_and_nothing_else_is():
    expected = {name: version for name, version in floors().items() if name != "python"}
    assert pins() == expected


def test_each_requirement_is_a_range_with_its_floor_first():
    for name, requirement in install_requires().items():
        assert re.fullmatch(rf"{name.replace('_', '[-_]')}>=[\w.]+(,<[\w.]+)?", requirement, re.I), (
            requirement
        )


@pytest.mark.skipif(os.environ.get("CLIP_LORA_OLDEST") != "1", reason="only under make test-oldest")
def test_make_test_oldest_runs_at_the_floors():
    for name, version in pins().items():
        installed = importlib.metadata.version(name).split("+")[0]  # torch's local tag (+cpu, +cu130)
        assert installed == version, f"{name} {installed} installed, {version} is the floor"
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" == floors()["python"]


def test_the_contributing_page_states_the_floors_setup_cfg_declares():
    # docs/contributing.md holds the paragraph (read directly: this file imports nothing of the project's tests).
    readme = " ".join((ROOT / "docs" / "contributing.md").read_text().split())
    paragraph = readme[readme.index("**Versions: the range is tested at both ends.**") :]
    paragraph = paragraph[: paragraph.index("pins them")]
    stated = dict(
        re.findall(
            r"\b(torch|transformers|peft|accelerate|datasets|evaluate|numpy|Python) (\d[\d.]*\d)", paragraph
        )
    )
    assert len(stated) == 8, stated
    for name, version in stated.items():
        floor = floors()[name.lower()]
        assert floor == version or floor.startswith(version + "."), (name, version, floor)
