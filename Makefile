# `make run`: install into .venv, fetch the sample model and videos, run config.yaml.
# `make test`: install into .venv with the test extras and system packages, run the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run test install install-test system-test-deps assets bench lint clean

$(BIN)/python:
	bash scripts/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python -m streams assets
	$(BIN)/python -m streams run $(CONFIG)

system-test-deps: install
	bash tests/support/install_rtsp_deps.sh
	bash tests/support/install_broker_deps.sh
	bash tests/support/install_browser_deps.sh
	PYTHON=$(BIN)/python bash tests/support/install_tensorrt_bindings.sh

test: install system-test-deps
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m streams assets
	$(BIN)/python -m streams bench $(CONFIG)

lint: install
	$(BIN)/ruff check streams processors engines tests benchmarks
	$(BIN)/ruff format --check streams processors engines tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
