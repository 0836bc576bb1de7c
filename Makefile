# flexchain — the two commands of README.md:
#   make demo   set up everything, start a local Kafka + both services, run the demo (Ctrl-C stops)
#   make test   set up everything, then lint, type-check and run every test on a real local Kafka
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test unit lint bench bench-peers bench-all clean deploy-tools deploy-generate asyncapi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,postgres,notify,report]'
	$(BIN)/python -c 'from pathlib import Path; from flexchain.tools import broker; print("kafka jars:", broker.ensure_jars(Path(".cache/kafka")))'
	@rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/flexchain demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/flexchain schemas check

test: lint deploy-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 $(PYTEST_ARGS)

# tools of the deployment tier (tests/deploy): kubernetes-validate, the compose binary, the AsyncAPI
# parser (npm), Apicurio Registry and avro-tools (Maven Central), kcat (Debian) — into .cache/
deploy-tools: setup
	bash scripts/setup-deploy-tools.sh

deploy-generate: deploy-tools
	$(BIN)/python scripts/gen-deploy.py

asyncapi: setup
	$(BIN)/flexchain asyncapi --out .cache/flexchain.tools.asyncapi.json

unit: setup
	$(BIN)/python -m pytest -q tests/unit tests/contract

bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# the bench with its peers (Kafka Streams, quixstreams, faust-streaming; bench/peers/): the bench builds
# the Java peer with Maven and installs each Python peer's own pinned venv under .cache/bench-peers/ first
bench-peers: setup
	$(BIN)/python bench/run.py --peers $(BENCH_ARGS)

# every bench, one after the other, and one table of their figures (issue 18; about 75 minutes)
bench-all: setup
	$(BIN)/python bench/all.py $(BENCH_ARGS)

clean:
	rm -rf .cache/demo .cache/test-broker-* .cache/test-faults-* .cache/bench-broker .pytest_cache
