# Thin wrappers: the logic lives in Ansible (playbooks/, roles/) and Python (files/dags/).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ANSIBLE_PLAYBOOK := $(BIN)/ansible-playbook
# Extra arguments for ansible-playbook, e.g. make up ARGS='-e airflow_worker_cpus=2'
ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: help venv up verify rollback lint unit molecule test bench-converge

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(STAMP) ## Create .venv with the pinned controller toolchain

up: $(STAMP) ## Converge this host: Docker, MLflow, Airflow, DAGs, verification
	$(ANSIBLE_PLAYBOOK) site.yml $(ARGS)

lint: $(STAMP) ## ansible-lint (production profile), yamllint, ruff
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production --strict
	$(BIN)/ruff check .

unit: $(STAMP) ## Fast pytest suite on the controller
	$(BIN)/pytest -q tests

molecule: $(STAMP) ## Molecule scenarios against this host
	$(BIN)/molecule test --all

test: lint unit molecule ## Everything CI runs

bench-converge: $(STAMP) ## Print cold and warm converge wall times
	$(BIN)/python bench/converge.py $(ARGS)
