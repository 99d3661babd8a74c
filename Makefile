# doggo-recog: `make pipeline` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
# Every command runs with the venv first on PATH, so `python` in dvc.yaml is the venv's.
RUN := PATH="$(CURDIR)/$(BIN):$$PATH"
# gcsfs's gRPC bucket-type probe waits 60 s per call on a GCS emulator; we use no zonal/HNS buckets.
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT ?= false

.DEFAULT_GOAL := help
.PHONY: help venv data-new pipeline test test-fast lint format bench remote collect clean-venv

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv and install requirements.txt (once per requirements change)

data-new: venv ## make sure data/new exists (pull it, or lay down the empty first version)
	@test -d data/new || $(RUN) dvc pull -q data/new.dvc 2>/dev/null || $(RUN) python -m stages.ingest --init data/new

pipeline: venv data-new ## run the whole DVC pipeline (dvc repro)
	$(RUN) dvc repro

test: venv ## run the whole test suite, as CI does
	$(RUN) python -m pytest

test-fast: venv ## run the tests not marked slow
	$(RUN) python -m pytest -m "not slow"

lint: venv ## ruff check and format check
	$(RUN) ruff check . && $(RUN) ruff format --check .

format: venv ## ruff format and fix
	$(RUN) ruff format . && $(RUN) ruff check --fix .

bench: venv ## run every benchmark under bench/ (numbers go into the README)
	$(RUN) python -m bench

remote: venv ## use a GCS bucket as the default DVC remote: make remote BUCKET=gs://bucket/dvc
	@test -n "$(BUCKET)" || { echo "usage: make remote BUCKET=gs://my-bucket/dvc"; exit 2; }
	$(RUN) python -m stages.remote "$(BUCKET)"

collect: venv ## import new bot photos into data/new as a data version: make collect [FROM=gs://b/p]
	$(RUN) python -m stages.collect $(if $(FROM),--from "$(FROM)")

clean-venv: ## remove the virtual environment
	rm -rf $(VENV)
