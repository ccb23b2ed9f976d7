# The two set-up commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q newsletter  # as a non-editable install does: every command starts faster
	touch $(STAMP)

## demo: build every example issue, send the example issue to the local outbox, build the archive
demo: $(STAMP)
	$(BIN)/newsletter demo

## test: lint, then the whole test suite
test: $(STAMP)
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/ruff format --check newsletter tests bench

format: $(STAMP)
	$(BIN)/ruff format newsletter tests bench
	$(BIN)/ruff check --fix newsletter tests bench

bench: $(STAMP)
	$(BIN)/python bench/build.py

clean:
	rm -rf build site outbox .pytest_cache
