# Two commands do all set-up on a fresh machine:  `make demo`  (offline end-to-end run)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned so pip takes the local CPU wheel here (on a GPU machine: the CUDA build).
TORCH ?= torch==2.13.0

.PHONY: setup demo test fuzz quality bench clean

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
	$(BIN)/clip-lora train smoke --output_dir runs/demo --overwrite_output_dir true

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q --timeout 600

# The flag fuzz of tests/test_fuzz_flags.py with many more draws than `make test` (FUZZ_EXAMPLES=N to change).
fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(BIN)/python -m pytest -q --timeout 7200 tests/test_fuzz_flags.py

quality: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf runs $(VENV)
