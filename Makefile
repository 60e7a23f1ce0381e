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

.PHONY: setup up test test-fast bench lint format clean notebook
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	$(UV) pip install --python $(PY) -e ".[dev]"
	@# Bytecode for every installed module, once: with PYTHONDONTWRITEBYTECODE set (as in many
	@# containers) each process would otherwise compile all it imports, every time it starts.
	@echo "Compiling the environment's bytecode (once, ~40 s)..."
	@$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	@touch $(STAMP)

# The project's own modules, brought up to date before each run (quick when nothing changed).
BYTECODE := $(PY) -m compileall -q -j 0 image_etl lambda_resizer lambda_upload_api pipelines >/dev/null

# The progressive-JPEG scan decoder (C, loaded by lambda_resizer/formats/jpeg_scaled.py): rebuilt when
# its source changes; without a compiler a warning says libjpeg decodes those files instead.
NATIVE := lambda_resizer/formats/_jpeg_scaled_ac.so lambda_resizer/formats/_webp_lossless_rows.so
$(NATIVE) &: lambda_resizer/formats/jpeg_scaled_ac.c lambda_resizer/formats/webp_lossless_rows.c lambda_resizer/formats/native_build.py $(STAMP)
	@$(PY) -m lambda_resizer.formats.native_build

setup: $(STAMP) $(NATIVE)

# Browser tests drive Debian's Chromium (never a downloaded build); install it once, loudly.
$(CHROMIUM):
	@echo "Installing Chromium for the browser tests (Debian package chromium)..."
	@$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null \
		|| { echo "ERROR: could not install Chromium (apt-get install chromium); the browser tests need $(CHROMIUM)" >&2; exit 1; }

## Start the local stack in the foreground (AWS emulation, event workers). ARGS="--aws-port 4567" etc.
up: setup
	@$(BYTECODE)
	IMAGE_ETL_DIE_WITH_PARENT=1 exec $(VENV)/bin/image-etl up $(ARGS)

# `make test` is two runs: the independent tests on both cores (pytest-xdist), then the end-to-end
# ones one at a time: they share one `image-etl up` (the session's `shared_stack`) and start Dagster
# and Chromium. xdist's default distribution (each test to whichever worker is free), not loadfile:
# under pytest 9.2 the OpenAPI fuzz tests (one per operation) share a node id, and loadfile, which
# schedules by node id, silently runs one of each three; nor loadgroup, which pytest 9.2 breaks too
# (pytest-xdist issue 1386).
PARALLEL_TESTS := -m 'not e2e' -n 2
SERIAL_TESTS := -m e2e

## Every test: unit, handler, then end-to-end through the real local stack (see README "Tests").
## PYTEST_ARGS go to both runs.
test: setup $(CHROMIUM)
	@$(BYTECODE)
	@# The second run runs whatever the first did; make fails if either failed. Exit status 5 (no test
	@# selected, as when PYTEST_ARGS names e2e files only) is a failure only when both runs say it.
	@echo "$(PY) -m pytest $(PARALLEL_TESTS) $(PYTEST_ARGS)"; \
	$(PY) -m pytest $(PARALLEL_TESTS) $(PYTEST_ARGS); parallel=$$?; \
	echo "$(PY) -m pytest $(SERIAL_TESTS) $(PYTEST_ARGS)"; \
	$(PY) -m pytest $(SERIAL_TESTS) $(PYTEST_ARGS); serial=$$?; \
	if [ $$parallel = 5 ] && [ $$serial = 5 ]; then exit 5; fi; \
	for status in $$parallel $$serial; do [ $$status = 0 ] || [ $$status = 5 ] || exit $$status; done

## The quick tests, on both cores (~1 min): no e2e, nothing marked slow (see README "Tests").
test-fast: setup
	$(PY) -m pytest -m "not e2e and not slow" -n 2 $(PYTEST_ARGS)

## JupyterLab on 127.0.0.1:8888 with the project's environment as its kernel (notebooks/).
notebook: setup
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --port 8888 --no-browser --notebook-dir notebooks

## Benchmarks (bench/RESULTS.md); also installs pyvips for the libvips reference.
bench: setup
	$(UV) pip install --quiet --python $(PY) -e ".[dev,bench]"
	$(PY) bench/resize.py
	$(PY) bench/resize.py --memory
	$(PY) bench/progressive_jpeg.py
	$(PY) bench/manifest.py
	$(PY) bench/local_stack.py

## Ruff (style, imports, bugbear) and mypy over the packages ([tool.mypy]); ~70 s cold, ~1 s warm.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info

# --- AWS (infra/, see README "Deploying to AWS") ---------------------------------------------------
# `synth` needs no CDK CLI, no Docker and (once the wheelhouse is filled) no network. The others run
# the aws-cdk CLI pinned in infra/package-lock.json, installed into infra/node_modules.
# CDK_ARGS="-c stackPrefix=ImageEtlDev --profile dev" etc. are passed to the CLI.
CDK_ARGS ?=
CDK_CLI := infra/node_modules/.bin/cdk
CDK_ENV := CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
.PHONY: synth wheels cdk-cli bootstrap diff deploy destroy stack-env

$(CDK_CLI): infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund
	@touch $(CDK_CLI)

cdk-cli: $(CDK_CLI)

## Download the Lambda layers' wheels into infra/.cache/wheelhouse, so `make synth` works offline.
wheels: setup
	$(CDK_ENV) $(PY) -m infra.bundling

## Synthesize the three stacks into infra/cdk.out (cdk-nag errors fail it).
synth: setup
	$(CDK_ENV) $(PY) -m infra.app

## Once per account and region: the CDK's asset bucket and deploy roles.
bootstrap: setup $(CDK_CLI)
	cd infra && $(CDK_ENV) node_modules/.bin/cdk bootstrap $(CDK_ARGS)

diff: setup $(CDK_CLI)
	cd infra && $(CDK_ENV) node_modules/.bin/cdk diff --all $(CDK_ARGS)

## Deploy all three stacks; their outputs also go to infra/cdk-outputs.json.
deploy: setup $(CDK_CLI)
	cd infra && $(CDK_ENV) node_modules/.bin/cdk deploy --all --outputs-file cdk-outputs.json $(CDK_ARGS)

## Delete the stacks; buckets and the table are kept (RETAIN), see README.
destroy: setup $(CDK_CLI)
	cd infra && $(CDK_ENV) node_modules/.bin/cdk destroy --all $(CDK_ARGS)

## `eval "$$(make -s stack-env)"`: point image-etl (CLI, notebooks, Dagster) at the last `make deploy`.
stack-env: setup
	@test -f infra/cdk-outputs.json || { echo "no infra/cdk-outputs.json: run make deploy first" >&2; exit 1; }
	@$(PY) -m image_etl.stack_outputs infra/cdk-outputs.json
