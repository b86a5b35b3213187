#!/usr/bin/env bash
# ONE prepared GPU check for a lent H100/H200 (offline there; about 2-4 minutes, well under 8).
#
#   Here, first (needs PyPI):   bash bench/fetch_wheels.sh          -> .whl/ (~62 MiB, git-ignored)
#   Then, through the device tool's run, with carry [".whl"] and timeout_s 540:
#       bash bench/gpu_check.sh
#   It writes $OUT/gpu_results.json (and bench/gpu_results.json on that machine); copy it to bench/gpu_results.json
#   here and run `python bench/report.py` to put it into bench/RESULTS.md.
#
# What it reports, for bf16 and fp16 at batch 32 (the default) and 128: training img/s of ClipLoraTrainer on the
# cached data path, the data path's standalone img/s, the fraction of step time the GPU waits for data, peak GPU
# memory, evaluation img/s, and the projected 10-epoch ImageNette run (goal: < 3 min with the GPU busy >= 85%).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline
if ls .whl/*.whl >/dev/null 2>&1; then
  # The image's Python holds torch; these wheels add datasets/evaluate and pin transformers/peft/pyarrow to ours.
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site
else
  echo "no .whl/ carried: using the machine's own packages (run bench/fetch_wheels.sh here and carry .whl)"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers, datasets, peft; print('torch', torch.__version__, '| transformers',
transformers.__version__, '| datasets', datasets.__version__, '| peft', peft.__version__, '| cuda', torch.cuda.is_available())" \
  || exit 1
set -o pipefail
timeout 480 python3 bench/gpu_check.py --out "$OUT/gpu_results.json" "$@" 2>&1 | tee "$OUT/gpu_check.log" \
  | grep -v "examples/s\]\|Resizing images"
status=${PIPESTATUS[0]}
cp "$OUT/gpu_results.json" bench/gpu_results.json 2>/dev/null || true
exit "$status"
