# Two entry points for a fresh machine: `make run` (set up, then the main search on the embedded
# synthetic default) and `make test` (set up, lint, then the default test suite; .ci/run calls it,
# then `make test-slow`).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,dashboard]'
	touch $(STAMP)

run: setup
	$(BIN)/mdsearch run --budget 100

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
