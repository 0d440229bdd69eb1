# Quick start: `make demo` (install + main job on the local profile), `make test` (all tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-dev demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,ansible]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(PY) examples/agents/temperature_forecast.py

test: install-dev
	bash tests/run.sh

bench: install-dev
	$(PY) benchmarks/run_all.py

lint: install-dev
	$(VENV)/bin/ruff check chiltepin tests benchmarks examples
	$(VENV)/bin/ruff format --check chiltepin tests benchmarks examples

clean:
	rm -rf $(VENV) runinfo
