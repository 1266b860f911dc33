# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install samlora, run the offline demo
#   make test   - create .venv, install samlora with dev tools, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Without a GPU, install the CPU build of torch first (a plain `torch` requirement
# would pull a multi-GB CUDA build): from the configured indexes / find-links when
# they hold it, else from PyTorch's CPU index. Override with TORCH_SPEC=... if needed.
TORCH_SPEC ?= torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup demo test lint

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q "$(TORCH_SPEC)" 2>/dev/null \
		|| $(BIN)/python -m pip install -q "$(TORCH_SPEC)" --extra-index-url "$(TORCH_CPU_INDEX)"; \
	fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/samlora demo

# pytest-xdist: one test file per worker process (at most 4), one torch thread each
test: setup
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
