# Tally: every target sets up what it needs (Node 24, dependencies, the local stack) by itself.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

NODE_DIR := $(CURDIR)/.local/node
export PATH := $(NODE_DIR)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# ~/.npmrc on these machines points nodedir at the system Node 20; add-ons must build against ours.
export npm_config_nodedir := $(NODE_DIR)
export KAFKAJS_NO_PARTITIONER_WARNING := 1
# kafkajs on Node 24 warns about a negative timeout it clamps itself (STACK.md): harmless noise.
export NODE_OPTIONS := --disable-warning=TimeoutNegativeWarning

SETUP_STAMP := .local/setup.stamp

.PHONY: help setup check typecheck lint format up down status test test-unit test-int test-faults up-cluster down-cluster demo bench bench-peer clean test-containers images fuzz

help:
	@echo "make demo   run the main job: stack, migrate, topics, load, apply, project, verify"
	@echo "make test   set up everything missing, start the stack, run unit and integration tests"
	@echo "make bench  benchmark (docs/bench/latest.*); make bench-peer adds Kafka Connect + Debezium's JDBC sink"
	@echo "make setup | check | up | down | status | test-unit | test-int | test-faults | test-containers | images | up-cluster | down-cluster | clean"

setup: $(SETUP_STAMP)

$(SETUP_STAMP): package.json package-lock.json infra/setup-node.sh
	@mkdir -p .local/logs
	@bash infra/setup-node.sh >/dev/null
	@echo "setup: node $$(node --version), installing locked dependencies"
	@# npm install, not npm ci: the registry reachable here lacks biome's non-Linux optional
	@# packages, so the lock cannot list them and npm ci refuses it. Versions are pinned exactly
	@# in package.json and the lock is honoured, so both give the same tree.
	@npm install --no-audit --no-fund --loglevel=error 2>&1 | grep -v 'Unknown .*config "nodedir"' || true
	@test -d node_modules/kafkajs || { echo "setup: npm ci failed" >&2; exit 1; }
	@touch $@

typecheck: setup
	tsc --noEmit -p tsconfig.json

lint: setup
	biome check .

format: setup
	biome format --write .

check: typecheck lint layers test-unit

# The layering (.dependency-cruiser.cjs): fails on an import that crosses a layer, or a circle.
.PHONY: layers
layers: setup
	depcruise --config .dependency-cruiser.cjs --output-type err services tools

up: setup
	@bash infra/stack.sh up

down:
	@bash infra/stack.sh down

status:
	@bash infra/stack.sh status

test-unit: setup
	vitest run --project unit

test-int: setup up
	vitest run --project int

# Every project but the cluster's, then the fault tests on the cluster, the container tier and the
# user-project step; the closing line counts them all and fails when one failed (the container tier
# and the user-project step leave the verdict to it, so that it is always printed).
test: setup up
	vitest run --project '!cluster' --reporter=default --reporter=json --outputFile.json=.local/test-results.json
	@$(MAKE) --no-print-directory test-faults
	@bash infra/containers/tier.sh
	@bash infra/user-project.sh --after-tier || true
	@node infra/test-summary.mjs .local/test-results.json .local/test-results-faults.json \
		--containers .local/test-results-containers.json --user-project .local/test-results-user-project.txt

# Tally as a user outside the repository gets it: the packed tarballs installed in a temporary
# folder, a producer script and `npx tally` on the local stack, the README's testcontainers example
# under vitest and node --test (NOT RUN where no container engine can answer). infra/user-project.sh.
.PHONY: test-user-project
test-user-project: setup up
	@bash infra/user-project.sh

# The container tier alone: the integration suites on a stack from testcontainers, and the tests
# of tally/testing. Installs podman (Debian, root) and builds the images when missing.
test-containers: setup
	@bash infra/containers/tier.sh --required
	@node infra/test-summary.mjs --containers .local/test-results-containers.json

# Container images for testcontainers (only those missing; Tally's when its bundle changed).
images: setup
	@bash infra/images/build.sh

# Tally's image alone (infra/images/tally.Containerfile), the one infra/k8s runs: tag and push it
# as infra/k8s/README.md says.
.PHONY: image
image: setup
	@bash infra/images/build.sh tally

# Fault tests on the multi-server cluster (about 5 minutes): figures in .local/faults-report.json.
test-faults: setup up-cluster
	vitest run --project cluster --reporter=default --reporter=json --outputFile.json=.local/test-results-faults.json
	@node infra/test-summary.mjs .local/test-results-faults.json

# Property tests (fast-check) of decode, decide and plan, longer than in test-unit: SEEDS runs per
# property (default 1000), from a random seed unless SEED is given; the seed is printed to replay.
fuzz: setup
	@seed='$(SEED)'; [ -n "$$seed" ] || seed=$$(( (RANDOM << 15) | RANDOM )); \
	echo "fuzz: seed $$seed, $(or $(SEEDS),1000) runs per property (replay: make fuzz SEED=$$seed SEEDS=$(or $(SEEDS),1000))"; \
	TALLY_TEST_FUZZ_SEED=$$seed TALLY_TEST_FUZZ_RUNS=$(or $(SEEDS),1000) TALLY_TEST_SIM_BASE_SEED=$$seed TALLY_TEST_SIM_SEEDS=$(or $(SEEDS),1000) vitest run --project unit .property.unit.spec member-sim.unit.spec

# The opt-in cluster: 3 Kafka nodes (RF 3, min ISR 2), a PostgreSQL server per shard, its own registry.
up-cluster: setup
	@bash infra/stack.sh up-cluster

down-cluster:
	@bash infra/stack.sh down-cluster

demo: setup up
	bin/tally-tools demo

# SCALE=1e7 extends the scaling series (events/s and peak RSS per process against the input size)
# to 10^7 events; SCALE=1e4,1e5 (any list) sets it. Not part of make test.
comma := ,
# PEER=1: then the peer (bench-peer) on the same events, merged into the same docs/bench/latest.*;
# the jars are fetched first, so a failed download stops the run before the long part.
bench: setup up
	$(if $(PEER),@bash infra/peer/peer.sh fetch)
	bin/tally-tools bench $(if $(SCALE),--scaling $(if $(filter 1e7,$(SCALE)),1e4$(comma)1e5$(comma)1e6$(comma)1e7,$(SCALE)))
	$(if $(PEER),bin/tally-tools bench-peer)

# The peer (Kafka Connect + Debezium's JDBC sink, ~100 MB of jars from Maven Central, fetched once)
# on the events of `make bench`; merged into docs/bench/latest.* when those are of the same events.
bench-peer: setup up
	@bash infra/peer/peer.sh fetch
	bin/tally-tools bench-peer

# Also removes the data of the PostgreSQL servers Tally started (kept outside the checkout).
clean:
	@bash infra/stack.sh clean
	rm -rf .local node_modules
