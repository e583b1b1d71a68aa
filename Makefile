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
# the deployment (make deploy): its folder (configs, logs, Redis and tracking data), replicas, nginx's
# port, and BOTIFY_CONFIG inside the image (empty: the image's own, e.g. service/config/experiments.yml)
DEPLOY_DIR ?= $(CURDIR)/deployment
REPLICAS ?= 2
DEPLOY_PORT ?= 8080
DEPLOY_CONFIG ?=
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup redis postgresql world world-small test experiment loop bench ui serve container container-test \
	tracking-server tracking-server-stop compose deploy deploy-down

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
	exec $(BIN)/mlflow run . -e loop --env-manager local --experiment-name botify-loop $(ARGS)

bench: setup world
	$(BIN)/python -m benchmarks $(ARGS)

# a tracking server (MLFLOW_TRACKING_URI=http://...) serves its own UI
ui: setup
	@case "$(MLFLOW_TRACKING_URI)" in http*) echo "the tracking server serves the UI: open $(MLFLOW_TRACKING_URI)"; exit 0;; esac; \
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

serve: setup world
	$(BIN)/bentoml serve --host 127.0.0.1 --port 3000

# The packaged champion as a container image (needs root for the Docker engine): first, before
# any Docker work, the champion's lists in the BentoML store (training/jobs/container_check.py:
# exported from the registry's @champion, or a message naming `make experiment` / `make loop`);
# engine up if needed, the local base image (cached), `bentoml build`, then
# `bentoml containerize` (BentoML's generated Dockerfile with bentofile.yaml's template: no
# compiler, no git; the legacy builder, as this engine has no buildx; RUN steps on the host's
# network to reach the package index). containerize runs from the temp folder: BentoML 1.4.40
# refuses the Bento's template outside the working directory (BentoML issue 5566).
container: setup world
	$(BIN)/python -m training.jobs.container_check
	container/engine.sh
	container/base_image.sh
	$(BIN)/bentoml build --output tag > .bento-build.log || { cat .bento-build.log; exit 1; }
	tag=$$(tail -1 .bento-build.log | sed 's/__tag__://'); rm -f .bento-build.log; \
	cd "$${TMPDIR:-/tmp}" && DOCKER_BUILDKIT=0 $(CURDIR)/$(BIN)/bentoml containerize $$tag --backend docker \
	  --opt network=host -t $(IMAGE):$${tag#*:} -t $(IMAGE):latest && \
	echo "image $(IMAGE):latest ($$tag, $$(docker image inspect -f '{{.Size}}' $(IMAGE):latest | awk '{printf "%.0f MB", $$1/1e6}')); run: docker run --network host $(IMAGE):latest serve --port 3000"

# docker-compose (Debian's package) runs the deployment
compose:
	@command -v docker-compose >/dev/null || { \
	  echo "docker-compose missing: installing it with apt-get (Debian package docker-compose)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }

# The deployment (deploy/compose.py): $(REPLICAS) replicas of $(IMAGE):latest behind nginx at
# 127.0.0.1:$(DEPLOY_PORT), Redis with append-only persistence, the tracking server; its folder
# $(DEPLOY_DIR). The images of Redis, nginx and the tracking server are built from Debian's
# packages (deploy/images.sh); the service's is `make container`'s.
deploy: setup compose
	container/engine.sh
	deploy/images.sh
	@docker image inspect $(IMAGE):latest >/dev/null 2>&1 || { \
	  echo "deploy: no image $(IMAGE):latest: build it with make container"; exit 2; }
	$(BIN)/python -m deploy.compose up --dir $(DEPLOY_DIR) --replicas $(REPLICAS) --image $(IMAGE):latest --port $(DEPLOY_PORT) \
	  $(if $(DEPLOY_CONFIG),--config $(DEPLOY_CONFIG))

# stops and removes every container of the deployment, and checks that none is left
deploy-down: setup compose
	$(BIN)/python -m deploy.compose down --dir $(DEPLOY_DIR)

# The container plays a day like the process-served Bento, and the deployment (two replicas +
# Redis behind nginx) like one container (container/test.py; throwaway MLflow and BentoML
# stores); the image holds no compiler and no git and is at most 500 MB. Not in `make test`:
# building images takes longer than CI's budget allows (README: measured time).
container-test: setup world redis compose
	$(BIN)/python -m container.test $(ARGS)
