# Every target creates and uses the project's own virtual environment.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Benchmarks run in their own environment: it also holds the peers they
# compare against (the `bench` extra). The test environment has only the
# OpenAI Agents SDK (the `openai-agents` extra), which the adapter's tests run.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

.PHONY: install browser test check lint typecheck demo bench bench-peers fuzz mutation clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The viewer's browser tests drive Debian's chromium (Playwright launches that
# executable; no browser is ever downloaded): installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

test: install browser
	$(PY) -m pytest tests property_tests

lint: install
	$(VENV)/bin/ruff check engine tests property_tests benchmarks examples tools
	$(VENV)/bin/ruff format --check engine tests property_tests benchmarks examples tools

typecheck: install
	$(VENV)/bin/mypy --strict engine

check: lint typecheck test

demo: install
	$(PY) examples/demo.py demo.db

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -e '.[bench]'
	touch $@

# RECORDINGS=DIR adds real recordings kept outside the project (DIR/NAME.json
# with DIR/NAME.expected.json) to the peer comparison.
bench: $(BENCH_VENV)/.installed
	$(BENCH_PY) -m benchmarks $(if $(RECORDINGS),--recordings $(RECORDINGS))

$(BENCH_VENV)/.peers-installed: $(BENCH_VENV)/.installed
	$(BENCH_PY) -m pip install --quiet -e '.[bench-peers]'
	touch $@

# The stores a user would pick instead (OpenAI Agents SDK sessions, LangGraph's
# SqliteSaver, Google ADK's DatabaseSessionService) beside the engine and raw
# sqlite3, then the realtime peer comparison.
bench-peers: $(BENCH_VENV)/.peers-installed
	$(BENCH_PY) -m benchmarks --only stores
	$(BENCH_PY) -m benchmarks.realtime_recordings $(if $(RECORDINGS),--recordings $(RECORDINGS))

# Long, randomised property runs for local use (minutes, not seconds).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest property_tests -x

# Mutation testing of the pure core (see [tool.mutmut] in pyproject.toml);
# the mutants run against the memory backend.
mutation: install
	$(PY) -m pip install --quiet 'mutmut>=3.3,<4'
	ENGINE_TEST_BACKENDS=memory $(VENV)/bin/mutmut run --max-children 2 || true
	$(PY) tools/mutation_report.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) demo.db .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
