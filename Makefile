# PulseEcom: `make run` (platform + demo tenant fed by the simulator), `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PULSE_PORT ?= 8000
PULSE_BASE_URL ?= http://localhost:$(PULSE_PORT)
export PULSE_PORT PULSE_BASE_URL

.PHONY: venv services migrate run serve worker beat test bench lint lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24,<27"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

services: venv
	$(BIN)/python scripts/ensure_services.py

migrate: services
	$(BIN)/python manage.py migrate_schemas --shared -v 0
	$(BIN)/python manage.py migrate_schemas --tenant -v 0

## Platform with the demo tenant fed live by the simulator (Ctrl-C stops everything).
run: migrate
	$(BIN)/python manage.py demo_setup
	$(BIN)/python scripts/run.py --port $(PULSE_PORT) $(if $(wildcard insights/management/commands/demo_feed.py),--feed,)

## The same services without the demo feed (integrators, benchmarks).
serve: migrate
	$(BIN)/python scripts/run.py --port $(PULSE_PORT)

worker: migrate
	$(BIN)/celery -A pulse worker -l INFO

beat: migrate
	$(BIN)/celery -A pulse beat -l INFO --schedule .pulse/celerybeat-schedule

## The whole test suite against the real PostgreSQL and Redis. "No tests collected" is a failure.
test: services
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure, not a pass"; exit 1; fi; exit $$rc

## The benchmarks (minutes, not part of the tests); BENCHES picks a subset, e.g. `make bench BENCHES=scoring_pure`.
BENCHES ?= scoring_pure kpi_evaluate ingest_throughput ingest_latency upload_csv scoring_async fraud_check \
	fraud_accuracy kpi_live kpi_accuracy learning_effect e2e_latency
bench: migrate
	@for name in $(BENCHES); do echo "== bench/$$name.py"; $(BIN)/python bench/$$name.py || exit 1; done

lint: venv
	$(BIN)/ruff check .

## Re-pin: refresh constraints.txt from the current virtualenv.
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pulseecom' > constraints.txt

clean:
	rm -rf $(VENV) .pulse
