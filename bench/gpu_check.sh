#!/usr/bin/env bash
# The GPU check, prepared to run once, right, on an offline GPU machine that is lent for minutes.
#
# Before, where PyPI is reachable:
#   bash bench/fetch_wheels.sh   # -> .whl/ (git-ignored, ~2.2 MiB): datasets, dill, multiprocess, evaluate, peft
#   make gpu-dry-run             # this script, CPU dry run, in a copy of the machine's Python with those wheels
# On the machine: copy the repo's working tree there together with .whl/ (it is git-ignored, so name it to whatever
# copies the tree), and run from the repo root, with the machine's python3 (the one that has torch):
#   bash bench/gpu_check.sh      # ~3.5 min; give it 5 (it stops itself: GPU_CHECK_LIMIT_S, then a hard timeout)
# Nothing is downloaded there. The wheels go to /tmp/gpu-check/site-packages (WHEEL_SITE) and PYTHONPATH.
# What comes back, in $OUT (default runs/gpu-check; three files): gpu_results.json (written after the set-up and
# after every run; "complete": true only once all ran), gpu_check.log (everything printed, versions first) and
# wheels.txt (which carried wheels went in, and any requirement the machine's Python does not meet).
# Then, here: cp that gpu_results.json bench/gpu_results.json && python bench/report.py --write-results
#
# It reports, for bf16 and fp16 at batch 32 (the default) and then 128, each run on a fresh model: training img/s of
# ClipLoraTrainer on the cached data path, the data path's standalone img/s, the fraction of step time the GPU waits
# for data, peak GPU memory, evaluation img/s (under the run's autocast), the dtype the matmuls really ran in, and
# the projected 10-epoch ImageNette run (goal: < 3 min with the GPU busy >= 85%).
#   DRY_RUN=1 bash bench/gpu_check.sh [gpu_check.py flags]   # CPU, tiny model, tiny data (what make gpu-dry-run runs)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
PYTHON=${PYTHON:-python3}
WHEEL_SITE=${WHEEL_SITE:-/tmp/gpu-check/site-packages}  # the path must hold 'site-packages': bench/install_wheels.py
if [[ -n "${DRY_RUN:-}" ]]; then
  LIMIT=${GPU_CHECK_LIMIT_S:-600}
  set -- --dry-run "$@"
else
  LIMIT=${GPU_CHECK_LIMIT_S:-180}  # + ~20 s of imports and wheels, + 1-2 min to start a machine: < 5 min in all
fi
check() {
  export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled \
    HF_DATASETS_DISABLE_PROGRESS_BARS=1
  echo "gpu_check.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" bench/install_wheels.py .whl "$WHEEL_SITE" | tee "$OUT/wheels.txt"
    [[ ${PIPESTATUS[0]} == 0 ]] || { echo "error: the wheels did not install"; return 1; }
    export PYTHONPATH="$WHEEL_SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "no .whl/ here: the machine's own packages only (it lacks datasets and evaluate: run bench/fetch_wheels.sh"
    echo "where PyPI is reachable, and bring .whl/ along)"
  fi
  timeout --kill-after=10 $((LIMIT + 60)) "$PYTHON" bench/gpu_check.py --out "$OUT/gpu_results.json" \
    --time-limit "$LIMIT" "$@"
  status=$?
  [[ $status == 124 || $status == 137 ]] && echo "gpu_check.py stopped by the timeout: $OUT/gpu_results.json holds the runs that ended"
  return "$status"
}

mkdir -p "$OUT"
check "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
