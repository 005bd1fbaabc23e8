# Everything runs inside a virtual environment that make creates on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install run test test-fast check format bench deploy worker status lock clean server exporter

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

## run the main job on the embedded default (SQLite + local Parquet + ephemeral Prefect + synthetic source)
run: $(STAMP)
	$(BIN)/marketpipe run

## the whole test suite (needs PostgreSQL on 127.0.0.1:5432; see README "Troubleshooting"):
## two parallel workers (one file stays on one worker), then the tests that restart services
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not serial"
	$(BIN)/pytest -m serial

## the unit tests that need no service (no PostgreSQL, moto S3 or Prefect server; tests/conftest.py
## marks the others `service`): about 30 s on 2 idle cores
test-fast: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist load -m "not service and not slow and not serial"

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(PY) -m benchmarks

## Prefect: blocks, work pool, limits, automation and the prefect.yaml deployments (needs PREFECT_API_URL)
deploy: $(STAMP)
	$(PY) -m deployments.bootstrap
	$(PY) -m deployments.jobs   # a deployment per scheduled job of ./marketpipe.yaml (if any)

## Prefect server on PostgreSQL (its own database `prefect`, created if missing); Ctrl-C stops it.
## Then: export PREFECT_API_URL=http://127.0.0.1:4200/api; make deploy; make worker
server: $(STAMP)
	$(PY) -m deployments.server

## every flow run of the worker writes its metrics to METRICS_DIR; `make exporter` serves their sum
METRICS_DIR ?= .marketpipe/prometheus
METRICS_EXPORTER_PORT ?= 9464
worker: $(STAMP)
	mkdir -p $(METRICS_DIR)
	PROMETHEUS_MULTIPROC_DIR=$(abspath $(METRICS_DIR)) $(BIN)/prefect worker start --pool marketpipe

## one /metrics endpoint (port 9464) for every run of every deployment on this machine
exporter: $(STAMP)
	$(PY) -m deployments.exporter --dir $(METRICS_DIR) --port $(METRICS_EXPORTER_PORT)

status: $(STAMP)
	$(BIN)/marketpipe status

## re-resolve from pyproject.toml alone (its pins carry the reasons), then freeze the result
lock:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable | sed '1i # pip constraints: exact versions resolved on the project machine (python 3.11). Regenerate with `make lock`; pins and their reasons live in pyproject.toml.' > requirements.lock
	touch $(STAMP)

clean:
	rm -rf $(VENV) .marketpipe
