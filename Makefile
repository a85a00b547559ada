# tierhouse — `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
INSTALLED := $(VENV)/.installed
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project -path dbt_project/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print)
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: help venv manifest warehouse warehouse-stop airflow airflow-stop demo test lint bench bench-smoke chaos lock clean browser docs

help:
	@echo "make demo      warehouse + sample data + real DAG runs + tier summary"
	@echo "make test      make lint, then the test suite (sets everything up first)"
	@echo "make lint      ruff, sqlfluff, mypy and the dbt project check (make test runs it first)"
	@echo "make bench     the benchmark of docs/BENCHMARK.md, 10k customers (SCALE=small: the smoke test's size)"
	@echo "make docs      dbt docs and Great Expectations Data Docs of the demo warehouse"
	@echo "make chaos     random crashes of the embedded server over ingest and a backfill (FAULTS=50; not part of the tests)"
	@echo "make lock      re-resolve requirements-dev.lock and requirements.lock from pyproject.toml"
	@echo "make warehouse / warehouse-stop   start or stop the embedded PostgreSQL"
	@echo "make airflow / airflow-stop       start or stop a local Airflow (api-server, scheduler, dag-processor, triggerer)"

venv: $(INSTALLED)

# The dev lock pins every package, the dev tools included, with hashes; uv installs it in
# seconds from its cache. The runtime image installs requirements.lock instead (see Dockerfile).
$(INSTALLED): requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(MANIFEST): $(INSTALLED) $(DBT_SOURCES)
	$(BIN)/tierhouse manifest > /dev/null
	@touch $@

manifest: $(MANIFEST)

warehouse: $(INSTALLED)
	$(BIN)/tierhouse warehouse start

warehouse-stop: $(INSTALLED)
	$(BIN)/tierhouse warehouse stop

# A real Airflow: its four components as processes, LocalExecutor, metadata on the embedded
# PostgreSQL; pid files and logs in .airflow/deployment. A second `make airflow` starts only what is not running.
airflow: $(MANIFEST)
	$(BIN)/tierhouse airflow start

airflow-stop: $(INSTALLED)
	$(BIN)/tierhouse airflow stop

demo: $(MANIFEST)
	$(BIN)/tierhouse demo

# Every check that needs no warehouse; `make test` runs it first. The same hooks run from
# .pre-commit-config.yaml; CONTRIBUTING.md lists each command on its own.
lint: $(MANIFEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models
	$(BIN)/mypy
	$(BIN)/python -m tierhouse.devtools.dbt_project_check --manifest $(MANIFEST)

# The local Airflow deployment's test runs in a pytest process of its own: run after the rest in
# one process it failed (its metadata login was refused), run alone it passes (CONTRIBUTING.md).
test: lint browser
	$(BIN)/pytest
	$(BIN)/pytest -m deployment tests/test_airflow_deployment.py

# Debian's headless Chromium, its driver and a CJK font (tier labels are Chinese), for the report's browser test
# (tests/test_report.py). Installed only when missing, and only where apt-get can (root on a
# Debian-like system); elsewhere the test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list 2>/dev/null | grep -qi wenquanyi; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei >/dev/null)) \
		|| echo "browser: could not install chromium, chromium-driver and fonts-wqy-zenhei; the report's browser test may skip"; \
	else echo "browser: chromium and chromium-driver missing and apt-get unavailable here; the report's browser test will skip"; fi

# dbt docs (dbt_project/target/static_index.html) and GE Data Docs (site/data_docs/), of the
# warehouse `make demo` built; the grading report links both
docs: $(MANIFEST)
	$(BIN)/tierhouse docs


# SCALE=small runs the smoke test's size (a few minutes); CUSTOMERS=N any size. It writes
# bench/results.json and docs/BENCHMARK.md's generated section.
SCALE ?= 10k
bench: $(MANIFEST)
	$(BIN)/python -m tierhouse.devtools.bench --scale $(SCALE) $(if $(CUSTOMERS),--customers $(CUSTOMERS))

# The benchmark's smoke run at a tiny size (tests/test_bench.py): minutes, so not in `make test`.
bench-smoke: $(MANIFEST)
	$(BIN)/pytest -m bench tests/test_bench.py

FAULTS ?= 50
chaos: $(MANIFEST)
	$(BIN)/python -m tierhouse.devtools.chaos --faults $(FAULTS)

# Both locks, from pyproject.toml: everything (dev extra included) first, then the runtime lock
# constrained to the dev lock's pins, so the image runs exactly the versions the tests ran.
# `UV_OFFLINE=1 make lock` re-resolves from uv's cache, without the network.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --quiet -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --quiet -c requirements-dev.lock -o requirements.lock

clean:
	-$(BIN)/tierhouse airflow stop
	-$(BIN)/tierhouse warehouse stop
	rm -rf .warehouse .airflow data dbt_project/target dbt_project/logs
