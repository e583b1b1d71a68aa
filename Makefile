# Botify's commands. Two of them are all a fresh machine needs:
#   make experiment   set up, then run the main job (the A/B experiment)
#   make test         set up, then run the tests
#   make loop         the daily loop: the champion re-trained, A/B-tested and promoted day by day
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MLFLOW_TRACKING_URI ?= sqlite:///mlruns/mlflow.db
# no pickle is deserialized by the project's processes (training/__init__.py sets it too)
export MLFLOW_ALLOW_PICKLE_DESERIALIZATION = false
IMAGE ?= botify
# the tracking server's folder (PostgreSQL's data, its password, the artifacts, the logs) and ports
TRACKING_DIR ?= $(CURDIR)/tracking
TRACKING_PORT ?= 5050
TRACKING_PG_PORT ?= 5433
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup redis postgresql world world-small test experiment loop bench ui serve container container-test \
	tracking-server tracking-server-stop

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

# PostgreSQL backs the tracking server; its tests start a real one. Installed like redis-server,
# without starting the package's own cluster (a policy-rc.d that says no while apt-get runs).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "PostgreSQL missing: installing it with apt-get (Debian package postgresql)"; \
	  p=/usr/sbin/policy-rc.d; added=; \
	  [ -e $$p ] || { printf '#!/bin/sh\nexit 101\n' > $$p && chmod +x $$p && added=1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; rc=$$?; \
	  [ -z "$$added" ] || rm -f $$p; exit $$rc; }

# MLflow's tracking server on PostgreSQL, its data in $(TRACKING_DIR) (loopback only; the
# password is generated into that folder and never printed); then export the URI it prints
# and `make experiment` / `make loop` record there.
tracking-server: setup postgresql
	$(BIN)/python -m deploy.tracking_server start --dir $(TRACKING_DIR) --port $(TRACKING_PORT) --pg-port $(TRACKING_PG_PORT)

tracking-server-stop: setup
	$(BIN)/python -m deploy.tracking_server stop --dir $(TRACKING_DIR)

world: setup
	$(BIN)/python -m sim.world --config sim/config/env.yml

world-small: setup
	$(BIN)/python -m sim.world --config sim/config/small.yml

test: setup redis postgresql world-small
	$(BIN)/python -m pytest -q tests

# exec: `kill <make's pid>` reaches `mlflow run` (make passes SIGTERM to its child; a shell
# in between would die of it and leave the job running)
experiment: setup
	exec $(BIN)/mlflow run . -e experiment --env-manager local --experiment-name botify-experiment $(ARGS)

# the daily loop: cold start, then 7 A/B days, each promoting its winner (ARGS="-P days=3", "-P quick=true")
loop: setup
	$(BIN)/mlflow run . -e loop --env-manager local --experiment-name botify-loop $(ARGS)

bench: setup world
	$(BIN)/python -m benchmarks $(ARGS)

ui: setup
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

serve: setup world
	$(BIN)/bentoml serve --host 127.0.0.1 --port 3000

# The packaged champion as a container image (needs root for the Docker engine, and a
# promotion by `make experiment`, whose export put the champion's models in the BentoML store):
# engine up if needed, the local base image (cached), `bentoml build`, then
# `bentoml containerize` (BentoML's generated Dockerfile; the legacy builder, as this engine
# has no buildx; RUN steps on the host's network to reach the package index).
container: setup world
	container/engine.sh
	container/base_image.sh
	$(BIN)/bentoml build --output tag > .bento-build.log || { cat .bento-build.log; exit 1; }
	tag=$$(tail -1 .bento-build.log | sed 's/__tag__://'); rm -f .bento-build.log; \
	DOCKER_BUILDKIT=0 $(BIN)/bentoml containerize $$tag --backend docker --opt network=host \
	  -t $(IMAGE):$${tag#*:} -t $(IMAGE):latest && \
	echo "image $(IMAGE):latest ($$tag); run: docker run --network host $(IMAGE):latest serve --port 3000"

# The container plays a day like the process-served Bento, and two replicas + Redis like one
# (container/test.py; throwaway MLflow and BentoML stores). Not in `make test`: building an
# image on this engine's vfs storage takes far longer than CI's budget (README: measured time).
container-test: setup world redis
	$(BIN)/python -m container.test $(ARGS)
