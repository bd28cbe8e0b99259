# `make train` and `make test` set everything up on a fresh machine: a .venv with the package installed
# editable, then train / lint and run the whole test suite (test: with the dev and demo extras); `make test-fast`
# leaves out the tests marked slow. ARGS are passed on: `make train ARGS="model=cgan"`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: train test test-fast install install-dev benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# stamp files: reinstall only when pyproject.toml changes
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,demo]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

train: install
	$(BIN)/python scripts/train.py $(ARGS)

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

# the inner loop while developing: every module, without the tests marked slow (CI runs `make test`)
test-fast: install-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

benchmark: install
	$(BIN)/python scripts/benchmark_throughput.py $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
