# Quick start: `make demo` (install + main job on the local profile), `make test` (all tests),
# `make stop` (stop what the tests and benchmarks left running).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-dev demo test bench lint docs stop clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,ansible,docs]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(PY) examples/agents/temperature_forecast.py

test: install-dev
	bash tests/run.sh

# Bytecode first, as an installed toolkit has it (the checkout is an editable install, and
# PYTHONDONTWRITEBYTECODE would have every agent and worker compile it again).
bench: install-dev
	$(PY) -m compileall -q chiltepin benchmarks >/dev/null
	$(PY) benchmarks/run_all.py

lint: install-dev
	$(VENV)/bin/ruff check chiltepin tests benchmarks examples
	$(VENV)/bin/ruff format --check chiltepin tests benchmarks examples

docs: install-dev
	$(VENV)/bin/mkdocs build --strict

# The Slurm test cluster (left up by `make bench`, or by an interrupted `make test`), then
# the loopback registry and the containers of the test podman store. Packages stay
# installed and images stay cached (README.md, Quick start). Each step is idempotent.
stop:
	bash tests/infra/slurm.sh stop
	if [ -d "$${CHILTEPIN_CONTAINERS_STATE:-/var/tmp/chiltepin-containers}" ]; then \
		bash tests/infra/containers.sh teardown; fi

clean:
	rm -rf $(VENV) runinfo site
