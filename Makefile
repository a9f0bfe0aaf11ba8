# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test up down status venv

# Servers up, sample readings into Kafka.
demo: venv up
	$(BIN)/conductor produce-readings --topic temperatures.aggregated --partitions 6 --count 10000

# The whole test suite against the real servers (started once for the session if not up).
test: venv
	$(BIN)/python -m pytest

up:
	compose/local up

down:
	compose/local down

status:
	compose/local status

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@
