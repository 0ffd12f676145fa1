# `make demo` and `make test` each create .venv if missing, install the project into it, and run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLBACKEND ?= Agg

.PHONY: demo test install lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The tests use stable-baselines3, which needs torch: a plain `torch` requirement resolves to a
# CUDA build of several GB, so the CPU build is installed first (pip takes it from the machine's
# wheel directory where there is one) and satisfies sb3's range.
TORCH ?= torch==2.13.0
$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Train an agent on Addition-v0 for about two minutes (ADD1/LSHIFT as macro actions), then
# watch it solve a 20-digit instance: its calls, framed by the sum it was given and the digits
# it wrote (`--compact`); the GIF shows the whole pad step by step.
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

# The documentation site into site/, strict: a warning (broken link, missing page or
# reference) fails the build. `$(BIN)/mkdocs serve` previews it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py

lint: $(STAMP)
	$(BIN)/ruff check npigym tests benchmarks

clean:
	rm -rf $(VENV) out build site *.egg-info .pytest_cache
