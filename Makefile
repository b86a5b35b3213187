# Two commands do all set-up on a fresh machine:  `make demo`  (offline end-to-end run)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned so pip takes the local CPU wheel here (on a GPU machine: the CUDA build).
TORCH ?= torch==2.13.0

.PHONY: setup demo test lint bench clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

runs/demo-assets/.done: $(BIN)/.installed tiny_clip.py
	$(BIN)/python tiny_clip.py --output_dir runs/demo-assets
	touch $@

demo: runs/demo-assets/.done
	$(BIN)/python train_clip_lora.py recipes/smoke.yaml --output_dir runs/demo --overwrite_output_dir true

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --timeout 600

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf runs $(VENV)
