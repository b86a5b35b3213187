#!/usr/bin/env bash
# Fetch, where PyPI is reachable, the wheels that an offline GPU machine's Python lacks for bench/gpu_check.sh:
#   bash bench/fetch_wheels.sh                       # -> .whl/ (git-ignored), the pinned versions below (~2.2 MiB)
#   PY=.venv/bin/python bash bench/fetch_wheels.sh   # the same packages, in the versions that Python has installed
#   CARRY_PYARROW=1 bash bench/fetch_wheels.sh       # also pyarrow (+47 MiB), for a machine whose pyarrow is < 21
# Needs only a python3 with pip. The wheels are for CPython 3.12 on x86-64 Linux (manylinux), the machine's Python.
# Copy .whl/ to the machine next to the repo's files (it is git-ignored, so say so explicitly to whatever copies the
# tree) and bench/gpu_check.sh installs it there with bench/install_wheels.py.
#
# What the machine's image has, in versions that meet setup.cfg's floors, stays there: torch, transformers (5.17;
# carrying ours would add 13.5 MiB), accelerate, huggingface_hub, safetensors, tokenizers, numpy, pillow, pyarrow,
# pandas, fsspec, xxhash, pyyaml, requests, tqdm, psutil, matplotlib (bench/gpu_machine.txt lists them).
# What it lacks: datasets (+ dill, multiprocess) and evaluate (metrics.py imports it). Its peft is of a version
# nobody has read: ours travels (0.8 MiB), so the GPU runs the peft the tests ran.
# .whl/alt/: datasets 5.0.0, whose pyarrow floor is 21 instead of 24. install_wheels.py takes it only where the
# machine's pyarrow is older than 24; where it is older than 21, it says so, and CARRY_PYARROW=1 is the way out.
set -euo pipefail
cd "$(dirname "$0")/.."
PINS=(datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 evaluate==0.4.6 peft==0.21.2)
ALT=(datasets==5.0.0)
PY=${PY:-}
PIP_PY=${PY:-python3}
if [[ -n "$PY" ]]; then  # the versions of the same packages in that Python
  mapfile -t PINS < <("$PY" -c "import importlib.metadata as m, sys
for spec in sys.argv[1:]:
    name = spec.split('==')[0]
    print(f'{name}=={m.version(name)}')" "${PINS[@]}")
fi
[[ -n "${CARRY_PYARROW:-}" ]] && PINS+=(pyarrow==24.0.0)  # the oldest the newest datasets accepts, and the smallest
rm -rf .whl && mkdir -p .whl/alt
fetch() {
  local dest=$1
  shift
  "$PIP_PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "$@" 2>&1 | grep -v '^WARNING: Location' || true
}
fetch .whl "${PINS[@]}"
fetch .whl/alt "${ALT[@]}"
for spec in "${PINS[@]}" "${ALT[@]}"; do  # pip download can fail quietly behind the filter above
  name=${spec%%==*} version=${spec#*==}
  compgen -G ".whl/$name-$version-*.whl" >/dev/null || compgen -G ".whl/alt/$name-$version-*.whl" >/dev/null \
    || { echo "error: no wheel for $spec in .whl/ (see pip's message above)" >&2; exit 1; }
done
"$PIP_PY" - <<'EOF'
import os, subprocess
from pathlib import Path
wheels = sorted(Path(".whl").rglob("*.whl"))
for w in wheels:
    print(f"  {w.stat().st_size / 2**20:6.2f} MiB  {w}")
carried = sum(w.stat().st_size for w in wheels)
files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, check=True).stdout.decode().split("\0")
tree = sum(os.path.getsize(f) for f in files if f and os.path.isfile(f))
print(f"carried wheels: {carried / 2**20:.2f} MiB in {len(wheels)} files; with the working tree that goes along "
      f"({tree / 2**20:.2f} MiB): {(carried + tree) / 2**20:.2f} MiB to send")
if carried + tree > 48 * 2**20:
    print("WARNING: over 48 MiB to send: a transfer limit (64 MiB is common) leaves little room")
EOF
