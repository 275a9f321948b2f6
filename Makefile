# litlab: every target is the project's interface; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
# torch is installed first, on its own: the CPU build lies on this machine's disk.
# On a GPU machine PyPI's torch==2.13.0 is the CUDA build; for another CUDA version:
#   make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu<version>"
TORCH ?= torch==2.13.0
ARGS ?=
CKPT ?=
INPUT ?=
OUTPUT ?= predictions.csv
J ?= 1
# not HOST: some shells set it to the machine's name, which would expose the servers
LITLAB_HOST ?= 127.0.0.1
PORT ?= 6006
DASHBOARD_PORT ?= 8080
MLFLOW_PORT ?= 5000
MLFLOW_STORE ?= sqlite:///$(RUNS)/mlflow.db  # logger=mlflow's tracking_uri by default
SEARCH ?= $(RUNS)/searches/circles
RUNS ?= runs
QUICK ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install the project (again only when pyproject.toml changes)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-warn-script-location $(TORCH)
	$(BIN)/pip install --quiet --no-warn-script-location -e ".[dev]"
	touch $@

train: $(STAMP)  ## train the default job; pick another with ARGS="experiment=seed optimizer.lr=0.1"
	$(BIN)/litlab train $(ARGS)

eval: $(STAMP)  ## test metrics of a checkpoint: make eval CKPT=runs/.../checkpoints/best.ckpt
	$(BIN)/litlab eval $(CKPT)

predict: $(STAMP)  ## predictions for new rows: make predict CKPT=... INPUT=rows.csv OUTPUT=pred.csv
	$(BIN)/litlab predict $(CKPT) $(INPUT) $(OUTPUT)

sweep: $(STAMP)  ## a grid of runs, J at a time: make sweep ARGS="optimizer=sgd,adam seed=1,2,3" J=2
	$(BIN)/litlab sweep -j $(J) $(ARGS)

search: $(STAMP)  ## a hyperparameter search with Optuna, J workers: make search ARGS="search=circles"
	$(BIN)/litlab search -j $(J) $(ARGS)

search-dashboard: $(STAMP)  ## optuna-dashboard of a search on 127.0.0.1:8080: SEARCH=runs/searches/circles
	@test -x $(BIN)/optuna-dashboard || $(BIN)/pip install --quiet -e ".[dashboard]"
	@echo "optuna-dashboard: http://$(LITLAB_HOST):$(DASHBOARD_PORT)/"
	$(BIN)/optuna-dashboard $(SEARCH)/study.journal --host $(LITLAB_HOST) --port $(DASHBOARD_PORT)

compare: $(STAMP)  ## the lesson's comparison: GD, momentum, RMSProp, Adam; then decay schedules
	$(BIN)/litlab compare -j $(J) $(ARGS)

tensorboard: $(STAMP)  ## serve every run on 127.0.0.1:6006 (RUNS=, PORT=, LITLAB_HOST= to change)
	@echo "TensorBoard: http://$(LITLAB_HOST):$(PORT)/"
	$(BIN)/tensorboard --logdir $(RUNS) --host $(LITLAB_HOST) --port $(PORT)

mlflow-ui: $(STAMP)  ## the MLflow UI of logger=mlflow's runs on 127.0.0.1:5000 (MLFLOW_STORE=, RUNS=)
	@$(BIN)/python -c "import flask, mlflow" 2>/dev/null || $(BIN)/pip install --quiet -e ".[mlflow-ui]"
	@echo "MLflow UI: http://$(LITLAB_HOST):$(MLFLOW_PORT)/"
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_STORE) --workers 1 --host $(LITLAB_HOST) --port $(MLFLOW_PORT)

# The suite runs logger=mlflow against a real SQLite store, so it installs that group too.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --no-warn-script-location -e ".[dev,mlflow]"
	touch $@

# One pytest worker per core (pytest-xdist); worksteal: an idle worker takes tests queued on a
# busy one, so a few long tests do not leave the other cores waiting.
XDIST := -n auto --dist worksteal

test: $(TEST_STAMP)  ## run the whole suite (the slow tests too) on every core; CI runs this
	$(BIN)/pytest $(XDIST)

test-fast: $(TEST_STAMP)  ## the tests not marked slow, on every core: the edit-run loop
	$(BIN)/pytest $(XDIST) -m "not slow"

bench: $(STAMP)  ## the template against raw PyTorch loops, side by side (QUICK=1: a short check)
	$(BIN)/python scripts/bench.py $(if $(QUICK),--quick)

gpu-check: $(STAMP)  ## on a GPU machine: GPU tests, speed, DDP, resume; one PASS/FAIL line each
	$(BIN)/python scripts/gpu_check.py

lint: $(STAMP)  ## check style with ruff
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)  ## rewrite the code in the house style
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

clean:  ## remove runs, caches and the virtual environment
	rm -rf $(VENV) $(RUNS) .pytest_cache .ruff_cache bench.json src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help install train eval predict sweep search search-dashboard compare tensorboard mlflow-ui test test-fast bench gpu-check lint format clean
