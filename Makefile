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

# Train an agent on Addition-v0 for about two minutes (ADD1/LSHIFT as macro actions), then
# watch it solve a 20-digit instance and show its learning curve.
demo: $(STAMP)
	rm -rf out/demo_run
	$(BIN)/npigym train --env Addition-v0 --config addition-macro --run-dir out/demo_run \
		time_limit_s=110 'eval_lengths=[5,20,100]' eval_episodes=50
	$(BIN)/npigym play out/demo_run --digits 20 --seed 0 --compact --no-clear \
		--gif out/addition_agent.gif
	@echo "learning curve: out/demo_run/learning_curves.png; episode: out/addition_agent.gif"

# Two workers, one per core of the CI machine: most of the suite's time is XLA compiling, which
# runs on one core. A test file stays on one worker, so its module fixtures are built once.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py

lint: $(STAMP)
	$(BIN)/ruff check npigym tests benchmarks

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
