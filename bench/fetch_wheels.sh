#!/usr/bin/env bash
# Run HERE (a machine with PyPI), before bench/gpu_check.sh goes to an offline GPU machine:
#   bash bench/fetch_wheels.sh            # -> .whl/ (git-ignored): the wheels the GPU image lacks
# The GPU image (Python 3.12) already has torch, accelerate, safetensors, tokenizers, huggingface_hub 1.x, pandas,
# xxhash, pillow, numpy; it lacks datasets (+ dill, multiprocess) and evaluate, and has an older transformers/peft
# (regex too: transformers checks its version at import).
# Versions are this project's venv's, so the GPU runs the code that the tests ran, except pyarrow: 24.0.0 is the
# oldest datasets accepts and its wheel the smallest (49 MB; 26.x is 55 MB), which keeps the carried tree < 64 MiB.
set -euo pipefail
specs=()
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for spec in datasets dill multiprocess evaluate transformers peft regex; do
  specs+=("$spec==$(version "$spec")")
done
for spec in "${specs[@]}" pyarrow==24.0.0; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "$spec"
done
du -sh .whl && ls .whl   # the tiny byte-level tokenizer serves on the GPU (its prompts cost a few ms of text tower)
