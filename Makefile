# Two commands matter: `make demo` and `make test`. Both bootstrap the environment:
# a pinned uv in .tools/, then .venv/ synced exactly to uv.lock.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced-stamp
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test lint unit integration bench clean env

env: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON) --quiet
	touch $@

demo: $(STAMP)
	$(VENV)/bin/pitboss demo

lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline operators sinks tests bench
	$(VENV)/bin/ruff format --check pipeline operators sinks tests bench
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

bench: $(STAMP)
	$(VENV)/bin/python bench/suite.py

clean:
	rm -rf $(VENV) $(TOOLS) out .mypy_cache .ruff_cache .pytest_cache
