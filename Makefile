PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where `make run` serves: `make run PORT=5701 HOST=0.0.0.0` (not read from the environment).
HOST := 127.0.0.1
PORT := 5678
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

# Engines whose adapters (gateway/integrations) are tested against the real engine, each in its
# own venv (.venv-engines/<engine>) because their pins clash with each other and with ours.
ENGINES := temporal prefect airflow langgraph celery
ENGINE_VENVS := .venv-engines

.PHONY: run test lint format bench screenshots clean test-engines $(addprefix test-engine-,$(ENGINES))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What serving needs, nothing more (no test tools).
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[postgres]'
	touch $@

# Everything for development: the runtime and the test extras (lint, mypy, browsers' driver).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $@ $(RUNTIME)

run: $(RUNTIME)
	$(BIN)/waitgate serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest
	$(MAKE) test-engines

$(ENGINE_VENVS)/%/.installed: pyproject.toml
	$(PYTHON) -m venv $(ENGINE_VENVS)/$*
	$(ENGINE_VENVS)/$*/bin/pip install --quiet --upgrade pip
	$(ENGINE_VENVS)/$*/bin/pip install --quiet -e '.[engine-test,$*]'
	touch $@

# A static pattern rule: make looks up no implicit (%) rule for a .PHONY target.
$(addprefix test-engine-,$(ENGINES)): test-engine-%: $(ENGINE_VENVS)/%/.installed
	$(ENGINE_VENVS)/$*/bin/pytest -p no:cacheprovider tests/engines/$*

test-engines: $(addprefix test-engine-,$(ENGINES))

# The browser tests save their screenshots in docs/screenshots/ (elsewhere they use a temp folder).
screenshots: $(STAMP)
	WAITGATE_SCREENSHOTS=docs/screenshots $(BIN)/pytest -p no:cacheprovider tests/ui

bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m tests.load

clean:
	rm -rf $(VENV) $(ENGINE_VENVS) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
