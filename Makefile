# replyd: `make run` starts a local daemon, `make test` runs the whole suite, `make mutants`
# breaks each guarantee on purpose in a copy of the tree and checks that its tests notice.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What is installed, one stamp each: `make run` needs replyd only, `make test` its dev tools too.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: run test mutants bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(RUNTIME)
	$(BIN)/replyd db upgrade
	$(BIN)/replyd demo
	$(BIN)/replyd serve

test: $(DEV)
	$(BIN)/ruff check service tests bench
	$(BIN)/mypy service
	$(BIN)/pytest

mutants: $(DEV)
	$(BIN)/python -m tests.mutants.run

bench: $(RUNTIME)
	$(BIN)/python bench/extraction.py
	$(BIN)/python bench/cli.py

clean:
	rm -rf $(VENV) var
