# Every target creates and uses the project's own virtual environment.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install test check lint typecheck demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(PY) -m pytest tests property_tests

lint: install
	$(VENV)/bin/ruff check engine tests property_tests benchmarks examples

typecheck: install
	$(VENV)/bin/mypy --strict engine

check: lint typecheck test

demo: install
	$(PY) examples/demo.py demo.db

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) demo.db .pytest_cache .mypy_cache .ruff_cache .hypothesis
