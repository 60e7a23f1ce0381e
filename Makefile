# The two commands: `make up` (start the local stack) and `make test` (run every test).
# Both create .venv and install the project when pyproject.toml changed, and are no-ops otherwise.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=
export UV_LINK_MODE := copy

.PHONY: setup up test test-fast bench lint format clean
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	$(UV) pip install --python $(PY) -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

# Browser tests drive Debian's Chromium (never a downloaded build); install it once, loudly.
$(CHROMIUM):
	@echo "Installing Chromium for the browser tests (Debian package chromium)..."
	@$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null \
		|| { echo "ERROR: could not install Chromium (apt-get install chromium); the browser tests need $(CHROMIUM)" >&2; exit 1; }

## Start the local stack in the foreground (AWS emulation, event workers). ARGS="--aws-port 4567" etc.
up: setup
	IMAGE_ETL_DIE_WITH_PARENT=1 exec $(VENV)/bin/image-etl up $(ARGS)

## Every test: unit, handler, end-to-end through the real local stack.
test: setup $(CHROMIUM)
	$(PY) -m pytest $(PYTEST_ARGS)

## Unit tests only (no local stack processes).
test-fast: setup
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

bench: setup
	$(PY) bench/resize.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
