# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU build of torch where there is no NVIDIA GPU (a bare `torch` could pull a multi-GB CUDA build).
TORCH_CPU := torch==2.13.0
# The lock: every package at the version the tests passed with (`make lock` writes it).
LOCK := infra/constraints.txt
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --constraint $(LOCK)

.PHONY: install lock demo test test-fast lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing the default (CUDA) torch build"; \
	else \
		echo "no GPU: installing the CPU build of torch ($(TORCH_CPU))"; \
		$(PIP) "$(TORCH_CPU)"; \
	fi
	$(PIP) -e ".[test,server]"
	$(PY) -m pip check
	touch $(STAMP)

# Resolve pyproject.toml's ranges afresh, in a scratch venv, and write what was installed to the
# lock. Run `make test` on the result before committing it.
lock:
	infra/lock.sh $(PYTHON) "$(TORCH_CPU)" $(LOCK)

# gan-pipeline on the embedded default: local Ray, Prefect's ephemeral mode, MLflow in runs/mlflow.db.
demo: $(STAMP)
	$(VENV)/bin/ganpipe pipeline --name digits

test: $(STAMP)
	$(VENV)/bin/ruff check gan_core pipelines tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --durations=30

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check gan_core pipelines tests bench
	$(VENV)/bin/ruff format --check gan_core pipelines tests bench
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format gan_core pipelines tests bench
	$(VENV)/bin/ruff check --fix gan_core pipelines tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
