"""Install the carried wheels into a folder for PYTHONPATH, as an offline GPU machine needs them (bench/gpu_check.sh).

    python3 bench/install_wheels.py .whl /tmp/gpu-check/site-packages
    export PYTHONPATH=/tmp/gpu-check/site-packages

Run it with the machine's own python3, before PYTHONPATH points at the folder. For each package it takes the newest
carried wheel (in .whl/ or .whl/alt/, from bench/fetch_wheels.sh) whose floors this Python meets: .whl/alt/ holds
older versions with lower floors, such as a datasets that accepts an older pyarrow. It prints what it took, and
every requirement this Python does not meet, then installs them as `pip install --no-index --no-deps --target`.

The folder's path must contain 'site-packages'. datasets fingerprints its transforms with dill, and dill references
a module only when the module's file lies under sys.prefix or on a path containing 'site-packages'; anything else it
copies by value. With the wheels in /tmp/site, `Dataset.from_dict` died 20 s into the check with
"PicklingError: Can't pickle <class 'MonthDayNano'>" (pyarrow, copied by value); under a 'site-packages' path, not.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # pip vendors it
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    from pip._vendor.packaging.version import Version

FLOOR_OPERATORS = {
    ">=",
    ">",
    "==",
    "~=",
    "===",
}  # failing one of these is a missing feature; the others are caps


def requirements(wheel: Path) -> list[Requirement]:
    """The wheel's unconditional Requires-Dist (extras and markers that do not hold here dropped)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def installed_version(name: str) -> Version | None:
    try:
        return Version(importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        return None


def unmet(wheel: Path, chosen: dict) -> tuple[list[str], list[str]]:
    """(floors this Python misses, caps it exceeds) for one wheel, counting the carried versions already chosen."""
    floors, caps = [], []
    for req in requirements(wheel):
        name = canonicalize_name(req.name)
        have = parse_wheel_filename(chosen[name].name)[1] if name in chosen else installed_version(name)
        if have is None:
            floors.append(f"{req} (missing)")
        elif not req.specifier.contains(have, prereleases=True):
            failed = {s.operator for s in req.specifier if not s.contains(have, prereleases=True)}
            (floors if failed & FLOOR_OPERATORS else caps).append(f"{req} (has {have})")
    return floors, caps


def choose(folder: Path) -> tuple[dict, list[str]]:
    """{package: wheel}: per package the newest carried wheel whose floors are met; and the notes to print."""
    candidates: dict[str, list[Path]] = {}
    for wheel in sorted(folder.glob("*.whl")) + sorted(folder.glob("alt/*.whl")):
        candidates.setdefault(canonicalize_name(parse_wheel_filename(wheel.name)[0]), []).append(wheel)
    for wheels in candidates.values():
        wheels.sort(key=lambda w: parse_wheel_filename(w.name)[1], reverse=True)
    chosen = {name: wheels[0] for name, wheels in candidates.items()}
    for _ in range(len(chosen) + 1):  # each pass may lower one package, which may change what others need
        changed = False
        for name, wheels in candidates.items():
            ok = next((w for w in wheels if not unmet(w, chosen)[0]), wheels[0])
            changed |= ok != chosen[name]
            chosen[name] = ok
        if not changed:
            break
    notes = []
    for name, wheel in sorted(chosen.items()):
        floors, caps = unmet(wheel, chosen)
        newer = [
            w.name
            for w in candidates[name]
            if parse_wheel_filename(w.name)[1] > parse_wheel_filename(wheel.name)[1]
        ]
        have = installed_version(name)
        line = f"  {wheel.relative_to(folder)} [this Python: {have or 'none'}]" + (
            f" (not {', '.join(newer)}: its floors are not met here)" if newer else ""
        )
        notes.append(line)
        notes += [f"    UNMET FLOOR, expect trouble: {r}" for r in floors]
        notes += [f"    above a cap (going on): {r}" for r in caps]
    return chosen, notes


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[0] + "\nusage: install_wheels.py WHEEL_DIR TARGET_DIR", file=sys.stderr)
        return 2
    folder, target = Path(argv[0]), Path(argv[1]).absolute()
    if "site-packages" not in str(target):
        print(
            f"error: {target}: the path must contain 'site-packages' (see this file's docstring: dill would "
            "pickle the carried modules by value, and datasets' fingerprinting fails)",
            file=sys.stderr,
        )
        return 2
    chosen, notes = choose(folder)
    if not chosen:
        print(f"error: no wheels in {folder}", file=sys.stderr)
        return 2
    print(f"carried wheels for {sys.executable} (Python {sys.version.split()[0]}) -> {target}:")
    print("\n".join(notes), flush=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        str(target),
        *map(str, chosen.values()),
    ]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
