# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint up down status venv

# Servers up, then the whole pipeline: readings, the aggregator, its results in Elasticsearch and Cassandra.
demo: venv
	BIN=$(BIN) examples/demo.sh

# The whole test suite against the real servers (started once for the session if not up).
test: venv
	$(BIN)/python -m pytest

# ruff: one formatter and linter (configured in pyproject.toml); CI runs it first.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

up:
	compose/local up

down:
	compose/local down
	CONDUCTOR_SECURE=1 compose/local down

status:
	compose/local status

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@
