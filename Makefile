# Two commands do everything on a fresh Debian machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench chaos lint typecheck setup broker database browser schemas bench-mappings clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"' \
	  || { echo "install Python 3.11+ (apt-get install python3 python3-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "python3-venv is missing: apt-get install python3-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP)

broker:
	@scripts/ensure-rabbitmq.sh

database:
	@scripts/ensure-postgres.sh

## Debian's headless Chromium, which the dashboard's browser tests drive (never a downloaded one).
browser:
	@scripts/ensure-chromium.sh

## Start the bus on its embedded defaults and show a real dossier flowing (Ctrl-C stops).
run: setup broker
	$(BIN)/bus run

## Lint, type-check and run the whole test suite (needs the local RabbitMQ and PostgreSQL).
test: setup broker database browser
	$(BIN)/ruff check bus connectors contracts tests
	$(BIN)/ruff format --check bus connectors contracts tests
	$(BIN)/mypy bus connectors contracts
	$(BIN)/python -m contracts.export --check
	$(BIN)/bus mappings check
	$(BIN)/bus mappings test
	$(BIN)/pytest

## The bus against RabbitMQ alone on this machine: per hop, latency, scale-out with 1/2/4 workers
## and 1/2 APIs, RSS over 200,000 dossiers; JSON and PNG in bench/results/. With BUS_DATABASE_URL
## on a PostgreSQL server, each deployment gets a fresh database there.
bench: setup broker
	$(BIN)/bus bench

## The fault suite at full size (about 25 minutes): worker SIGKILL, API killed between commit
## and publish, broker down 30 s, a cluster node stopped, partner down 60 s, 1 call in 5 answered
## 503, a poison message among 10,000; each ends with its lost / applied-twice count (both 0).
## `make test` runs every scenario at small size. PostgreSQL: set BUS_DATABASE_URL.
chaos: setup broker database
	$(BIN)/bus chaos --size full

## Map the DVCQG dossier both ways on one core and compare with json.loads (target 10,000/s).
bench-mappings: setup
	$(BIN)/bus mappings bench

lint: setup
	$(BIN)/ruff check bus connectors contracts tests

typecheck: setup
	$(BIN)/mypy bus connectors contracts

## Rewrite contracts/schemas/*.json from the models after changing a contract.
schemas: setup
	$(BIN)/python -m contracts.export

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
