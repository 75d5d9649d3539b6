# The two commands a newcomer needs: `make demo` and `make test`. Each installs what it needs.
# Everything else here is the local stack's lifecycle (see README.md, "The local stack").

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
KAPPA  := $(VENV)/bin/kappa
PYTEST_ARGS ?=
PIPELINE ?= $(JOB)

.PHONY: help venv up airflow status down clean demo test test-unit test-peers schemas-check backfill rebuild dashboards dashboards-preview k8s-validate k8s-generate

help:
	@echo "make demo       start the local stack and run the demo pipeline"
	@echo "make test       start the local stack and run every test"
	@echo "make up         install what is missing, start what is stopped, wait for health"
	@echo "make airflow    the local Airflow (UI http://127.0.0.1:18280, admin/admin) with the DAGs of orchestration/"
	@echo "make status     each service: up/down, port, pid, log file"
	@echo "make down       stop every service (data is kept)"
	@echo "make clean      stop every service and delete its data"
	@echo "make test-unit  only the tests that need no server"
	@echo "make test-peers the comparisons with a peer (Debezium on a Kafka Connect worker), not in make test"
	@echo "make schemas-check  validate schemas/avro/*.avsc and register them (fails on an incompatible change)"
	@echo "make backfill FROM=.. TO=.. [PIPELINE=..] [MODE=live|shadow] [DRY_RUN=1]  replay pipelines over a range (kappa backfill --help)"
	@echo "make rebuild PIPELINE=..  the Kappa rebuild: a second live job into a new version, cut-over at lag 0 (kappa rebuild --help)"
	@echo "make dashboards  write monitoring/grafana/dashboards/*.json from their code"
	@echo "make dashboards-preview [MINUTES=30] [SCENARIO=1]  draw the dashboards from the local Prometheus into docs/dashboards/*.png"
	@echo "make k8s-validate  render every k8s/ overlay with kustomize and validate it offline (Kubernetes + CRD schemas)"
	@echo "make k8s-generate  write k8s/base's pipelines, rules and dashboards manifests from their sources"

venv: $(VENV)/.installed

# Re-installs when pyproject.toml changes. `compat` editable mode puts the checkout itself on
# sys.path, so new top-level packages work without reinstalling.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[stack,dev]' --config-settings editable_mode=compat
	@touch $@

up: venv
	$(PY) -m stack up

# Not part of `make up` (its first start installs a venv and migrates a database: ~2 min).
airflow: venv
	$(PY) -m stack up airflow

status: venv
	@$(PY) -m stack status

down: venv
	$(PY) -m stack down

clean: venv
	$(PY) -m stack clean

demo: up
	$(PY) -m demo

test: up
	$(PY) -m pytest $(PYTEST_ARGS)

# make backfill FROM=2026-12-01 TO=2026-12-02 [PIPELINE=orders] (JOB= is the same) [MODE=live|shadow] [SOURCE=kafka|lake] [DRY_RUN=1]
#   [NO_CUT_OVER=1] (shadow: build the version, leave readers on the active one)
#   [METRICS_PORT=19309] (its progress on /metrics while it runs; the dashboard's replay panels)
backfill: up
	$(KAPPA) backfill --from "$(FROM)" --to "$(or $(TO),latest)" --mode "$(or $(MODE),live)" \
	  --source "$(or $(SOURCE),kafka)" $(if $(PIPELINE),--pipeline "$(PIPELINE)") $(if $(DRY_RUN),--dry-run) \
	  $(if $(NO_CUT_OVER),--no-cut-over) $(if $(DRY_RUN),,--metrics-port "$(or $(METRICS_PORT),19309)") $(BACKFILL_ARGS)

# make rebuild PIPELINE=orders [LAUNCH=none] [MAX_LAG=0]: the Kappa rebuild (README, "The Kappa rebuild")
rebuild: up
	@test -n "$(PIPELINE)" || { echo "make rebuild: PIPELINE=<pipeline> is required (e.g. PIPELINE=orders)" >&2; exit 2; }
	$(KAPPA) rebuild --pipeline "$(PIPELINE)" --launch "$(or $(LAUNCH),local)" --max-lag "$(or $(MAX_LAG),0)" \
	  $(BACKFILL_ARGS)

dashboards: venv
	$(PY) -m monitoring dashboards

dashboards-preview: up
	$(if $(SCENARIO),$(PY) -m demo.scenario --out docs/dashboards,$(PY) -m monitoring preview --minutes "$(or $(MINUTES),30)" --out docs/dashboards)

# Also part of `make test` (tests/unit/k8s/test_k8s.py). kustomize and kubectl-validate are built with
# `go install` into .stack/cache/go the first time (~3 min) by `python -m stack k8s-tools`, the CRDs
# come from the Go module proxy.
k8s-validate: venv
	$(PY) -m stack k8s-tools
	$(PY) -m k8s validate

k8s-generate: venv
	$(PY) -m k8s generate

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# The CDC connector beside Debezium (its jars from Maven Central, a Kafka Connect worker): minutes, not in make test.
test-peers: up
	$(PY) -m pytest -m peer tests/integration/connectors $(PYTEST_ARGS)

schemas-check: up
	$(PY) -m schemas.check
