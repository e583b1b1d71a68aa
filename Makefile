# Botify's commands. Two of them are all a fresh machine needs:
#   make experiment   set up, then run the main job (the A/B experiment)
#   make test         set up, then run the tests
#   make loop         the daily loop: the champion re-trained, A/B-tested and promoted day by day
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_TRACKING_URI ?= sqlite:///mlruns/mlflow.db
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup redis world world-small test experiment loop bench ui serve

$(BIN)/.installed: requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

setup: $(BIN)/.installed

# redis-server backs the shared session store; its tests start a real one.
redis:
	@command -v redis-server >/dev/null || { \
	  echo "redis-server missing: installing it with apt-get (Debian package redis-server)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

world: setup
	$(BIN)/python -m sim.world --config sim/config/env.yml

world-small: setup
	$(BIN)/python -m sim.world --config sim/config/small.yml

test: setup redis world-small
	$(BIN)/python -m pytest -q tests

experiment: setup
	$(BIN)/mlflow run . -e experiment --env-manager local --experiment-name botify-experiment $(ARGS)

# the daily loop: cold start, then 7 A/B days, each promoting its winner (ARGS="-P days=3", "-P quick=true")
loop: setup
	$(BIN)/mlflow run . -e loop --env-manager local --experiment-name botify-loop $(ARGS)

bench: setup world
	$(BIN)/python -m benchmarks $(ARGS)

ui: setup
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --port 5000

serve: setup world
	$(BIN)/bentoml serve --port 3000
