# `make demo` and `make test` each create .venv if missing, install the project into it, and run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLBACKEND ?= Agg

.PHONY: demo test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/npigym play Addition-v0 --digits 5 --seed 0 --gif out/addition_expert.gif

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py

lint: $(STAMP)
	$(BIN)/ruff check npigym tests benchmarks

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
