# Two commands do all set-up on a fresh machine:  `make demo`  (offline end-to-end run)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned so pip takes the local CPU wheel here (on a GPU machine: the CUDA build).
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-oldest test-browser fuzz quality bench gpu-dry-run mutation mutation-curated mutation-generated clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip
	$(BIN)/pip install --progress-bar on $(TORCH)
	$(BIN)/pip install --progress-bar on -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

runs/demo-assets/.done: $(BIN)/.installed clip_lora/testing_utils.py
	$(BIN)/python -m clip_lora.testing_utils --output_dir runs/demo-assets
	touch $@

demo: runs/demo-assets/.done
	$(BIN)/clip-lora train smoke --output_dir runs/demo --overwrite_output_dir true --control_eval_dir runs/demo-assets/control

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q --timeout 600

# The same project at the oldest versions it promises (setup.cfg's floors = constraints-oldest.txt; torch and
# transformers are the GPU machine's, torch from PyPI): the suite's core, where a rename upstream would break it. The
# launched pipeline through main() (zero-shot, training, dev selection, val, save; accumulation and a torchrun
# 2-process run against one process), resume after kill -9, the lean step, predict/export (onnx too), the flag parser, and
# the lists of versions and library internals. A few minutes after a first build of .venv-oldest (~5 GB: torch's
# CUDA build, which runs on the CPU).
OLDEST ?= .venv-oldest
OLDEST_TESTS = tests/test_versions.py tests/test_library_internals.py tests/test_train.py tests/test_trainer.py \
	tests/test_lean_step.py \
	tests/test_predict.py tests/test_export.py tests/test_onnx_export.py tests/test_onnx_predict.py tests/test_flag_schema.py \
	tests/test_resume.py::test_kill_9_in_second_epoch_then_rerun_resumes_and_matches \
	tests/test_distributed.py::test_launched_run_trains_what_one_process_trains

$(OLDEST)/.installed: setup.cfg pyproject.toml constraints-oldest.txt
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install --progress-bar off --upgrade pip
	$(OLDEST)/bin/pip install --progress-bar off -c constraints-oldest.txt -e ".[dev]"
	touch $@

test-oldest: $(OLDEST)/.installed
	CLIP_LORA_OLDEST=1 $(OLDEST)/bin/python -m pytest -q --timeout 600 -p no:cacheprovider $(OLDEST_TESTS)

# `clip-lora app` in a real headless browser. Not part of `make test`: it needs Debian's chromium + chromium-driver
# (as root: apt-get install -y chromium chromium-driver; ~120 MB download, ~420 MB on disk) and the app extras.
$(BIN)/.installed-app: $(BIN)/.installed setup.cfg
	$(BIN)/pip install --progress-bar on -e ".[app,app-test]"
	touch $@

test-browser: $(BIN)/.installed-app
	CLIP_LORA_BROWSER_TEST=required $(BIN)/python -m pytest -q --timeout 600 tests/test_app_browser.py

# The fuzz and fault tests with many more draws than CI runs (seeded: a failure reruns the same way).
fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} CLIP_LORA_FUZZ_EXAMPLES=$${CLIP_LORA_FUZZ_EXAMPLES:-500} CLIP_LORA_ALL_FAULTS=1 \
		$(BIN)/python -m pytest -q --timeout 7200 tests/test_fuzz_flags.py tests/test_fuzz_images.py \
		tests/test_run_dir.py tests/test_resume.py

quality: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python bench/run.py

# The GPU check (bench/gpu_check.sh) rehearsed on CPU in a Python 3.12 built like the offline GPU machine's, with
# the carried wheels installed as there; builds .gpu-venv/ once (GPU_VENV=DIR to reuse one). Needs no `make setup`.
gpu-dry-run:
	bash bench/gpu_dry_run.sh

# On demand, never in `make test` or CI: the curated one-line bugs (tools/mutants.py, ~30 min on 2 CPUs), then every
# generated operator-level mutant of the number-making functions (tools/mutagen.py, ~1 h), each against the fast
# tests of its file; writes both kill rates and every survivor to MUTATION.md. The two halves run alone too.
mutation: setup
	$(BIN)/python tools/mutation.py

mutation-curated: setup
	$(BIN)/python tools/mutation.py --curated

mutation-generated: setup
	$(BIN)/python tools/mutation.py --generated

clean:
	rm -rf runs $(VENV) $(OLDEST)
