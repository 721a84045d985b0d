# replyd: `make run` starts a local daemon, `make test` runs the whole suite, `make mutants`
# breaks each guarantee on purpose in a copy of the tree and checks that its tests notice.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test mutants lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/replyd db upgrade
	$(BIN)/replyd demo
	$(BIN)/replyd serve

test: $(STAMP)
	$(BIN)/ruff check service tests bench
	$(BIN)/mypy service
	$(BIN)/pytest

mutants: $(STAMP)
	$(BIN)/python -m tests.mutants.run

bench: $(STAMP)
	$(BIN)/python bench/extraction.py

clean:
	rm -rf $(VENV) var
