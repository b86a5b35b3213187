#!/usr/bin/env bash
# `make gpu-dry-run`: rehearse bench/gpu_check.sh here, before any GPU minute is spent on it.
#  1. A Python 3.12 venv built like the offline GPU machine's Python (bench/gpu_machine.txt: its versions, and no
#     datasets, evaluate or wandb), once, in .gpu-venv/ (git-ignored; ~5 GB, as torch from PyPI is the CUDA build
#     the machine has). GPU_VENV=DIR uses or builds one elsewhere; PY312=... names the Python 3.12 to build it with;
#     GPU_DRY_PYARROW=23.0.1 swaps that venv's pyarrow (rehearses the older datasets in .whl/alt/).
#  2. bench/fetch_wheels.sh -> .whl/, as before a real run.
#  3. A copy of what goes to the machine (tracked and untracked-not-ignored files, and .whl/) in a fresh temp
#     folder with no ../shared beside it, as there.
#  4. There: DRY_RUN=1 bash bench/gpu_check.sh with that venv's python3, so the wheels go in as on the machine
#     (pip --no-index --no-deps --target); then checks of the JSON, and bench/report.py renders it into a scratch
#     RESULTS.md, where it must read as a dry run. The JSON is kept in runs/gpu-dry-run/ (git-ignored).
# Nothing tracked changes. Exit status 0 means the check ran end to end in the machine's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
VENV=${GPU_VENV:-$ROOT/.gpu-venv}
REQS=$ROOT/bench/gpu_machine.txt

quiet() {  # run a command, dropping pip's notes about this machine's local index folders; keep its status
  "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
}

find_py312() {
  if [[ -n "${PY312:-}" ]]; then echo "$PY312"; return; fi
  if python3.12 -c '' 2>/dev/null; then command -v python3.12; return; fi
  if command -v pyenv >/dev/null; then
    local found
    found=$(ls -d "$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)
    [[ -n "$found" ]] && { echo "$found"; return; }
  fi
  echo "error: no Python 3.12 found (set PY312=/path/to/python3.12)" >&2
  return 1
}

stamp=$(sha256sum "$REQS" | cut -c1-16)
if [[ ! -f "$VENV/.gpu-machine" || "$(cat "$VENV/.gpu-machine")" != "$stamp" ]]; then
  py=$(find_py312)
  echo "== building $VENV (Python 3.12 like the GPU machine's; once; torch's CUDA build is a few GB)"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  quiet "$VENV/bin/python" -m pip install -q -r "$REQS"
  "$VENV/bin/python" - "$REQS" <<'EOF'
import importlib.metadata as m, sys
from packaging.version import Version
pins = [line.split("#")[0].strip() for line in open(sys.argv[1])]
for pin in (p for p in pins if "==" in p):
    name, version = pin.split("==")
    assert Version(m.version(name)).public == version, f"{name} {m.version(name)} installed, {version} pinned"
for name in ("datasets", "evaluate", "wandb", "dill", "multiprocess"):
    try:
        m.version(name)
        sys.exit(f"{name} is in the venv: the GPU machine has none")
    except m.PackageNotFoundError:
        pass
EOF
  echo "$stamp" > "$VENV/.gpu-machine"
fi
pyarrow=${GPU_DRY_PYARROW:-$(sed -n 's/^pyarrow==//p' "$REQS")}
if [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pyarrow"))')" != "$pyarrow" ]]; then
  quiet "$VENV/bin/python" -m pip install -q "pyarrow==$pyarrow"
fi
echo "== the GPU machine's Python, here: $("$VENV/bin/python" -c 'import sys, torch, transformers, pyarrow
print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "pyarrow", pyarrow.__version__)')"

echo "== bench/fetch_wheels.sh"
bash bench/fetch_wheels.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-dry-run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/repo" "$WORK/out"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [[ -e "$f" ]] && printf '%s\0' "$f"
done | tar --null -T - -cf - | tar -xf - -C "$WORK/repo"
cp -r .whl "$WORK/repo/.whl"
[[ ! -e "$WORK/shared" ]]
echo "== DRY_RUN=1 bash bench/gpu_check.sh in $WORK/repo (no ../shared beside it)"
(
  cd "$WORK/repo"
  unset PYTHONPATH
  PATH="$VENV/bin:$PATH" OUT="$WORK/out" WHEEL_SITE="$WORK/site-packages" DRY_RUN=1 bash bench/gpu_check.sh
)

echo "== checking $WORK/out"
"$VENV/bin/python" - "$WORK" <<'EOF'
import json, math, sys
from pathlib import Path

work = Path(sys.argv[1])
result = json.loads((work / "out" / "gpu_results.json").read_text())
versions, origin = result["versions"], result["imported_from"]
assert result["complete"] and result["dry_run"] and not result["problems"], result["problems"]
assert versions["transformers"] == "5.17.0" and versions["accelerate"] == "1.15.0", versions
for name in ("datasets", "evaluate", "dill", "multiprocess", "peft"):  # the carried wheels, not the venv's
    assert origin[name] == str((work / "site-packages").resolve()), (name, origin[name])
runs = result["runs"]
# The runs the check plans for a dry run, read from its own plan() so this list cannot go stale.
sys.path[:0] = [str(work / "site-packages"), str(work / "repo")]
from bench.gpu_check import DRY_RUN, plan

planned = plan(DRY_RUN["precisions"].split(","), [int(DRY_RUN["batch_sizes"])], DRY_RUN["workers"])
done = [(r["precision"], r["batch"], r["persistent_workers"], r.get("compiled", False)) for r in runs]
assert done == planned, (done, planned)
assert result["loader_workers"] == 2 and not result["skipped"], result["skipped"]
for run in runs:
    assert run["dtype_ok"] and run["compute_dtype"] == {"train": run["expected_dtype"], "eval": run["expected_dtype"]}
    for key in ("train_img_s", "eval_img_s", "data_img_s", "data_wait_fraction"):
        assert math.isfinite(run[key]) and run[key] >= 0, (key, run[key])
files = sorted(p.name for p in (work / "out").iterdir())
assert files == ["gpu_check.log", "gpu_results.json", "wheels.txt"], files
print(f"ok: {len(runs)} runs, datasets {versions['datasets']}, peft {versions['peft']} from the carried wheels; "
      f"transformers {versions['transformers']}, pyarrow {versions['pyarrow']} from the machine's Python")
EOF
"$VENV/bin/python" bench/report.py --gpu "$WORK/out/gpu_results.json" --output "$WORK/RESULTS.md"
sed -n '/^## GPU/,$p' "$WORK/RESULTS.md" | grep -q "Dry run, not GPU figures" || { echo "error: the report does not mark the dry run"; exit 1; }
mkdir -p runs/gpu-dry-run
cp "$WORK"/out/* "$WORK/RESULTS.md" runs/gpu-dry-run/
echo "== gpu dry run passed in $(($(date +%s) - START)) s; its files: runs/gpu-dry-run/"
