# The two set-up commands of the README: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
BASE_URL ?= http://127.0.0.1:8080
SCENARIO ?= all
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ticketing_test
TEST_REDIS_URL ?= redis://127.0.0.1:6379
# Where cargo puts the release binary (CARGO_TARGET_DIR moves it).
TICKETING ?= $(or $(CARGO_TARGET_DIR),target)/release/ticketing

.PHONY: run-cluster run test lint build release stack-up stack-down stack-status loadtest loadtest-max fuzz screenshots soak chaos chaos-ha

## run: the server with the demo data on 127.0.0.1:8080 (Postgres/Redis started if needed)
run: stack-up release
	$(TICKETING) seed
	exec $(TICKETING) serve

## test: every test, against real PostgreSQL and Redis (started if needed)
test:
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) scripts/stack.sh up
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) $(CARGO) test --workspace --all-targets
	$(CARGO) test -p ticketing_domain --features testing --doc
	scripts/redis-cluster.sh up
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_CLUSTER_URLS=$$(scripts/redis-cluster.sh urls) $(CARGO) test -p ticketing_redis --test it -- queue:: controls:: line_contract::
	scripts/check-alerts.sh

## run-cluster: N instances on a local Redis Cluster behind HAProxy on 127.0.0.1:8080
N ?= 3
run-cluster:
	scripts/run-cluster.sh $(N)

## screenshots: the browser tests in headless Chromium, saving the README's screenshots to docs/images
screenshots:
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) scripts/stack.sh up
	BROWSER_TESTS=required BROWSER_SCREENSHOTS=$(CURDIR)/docs/images TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) $(CARGO) test -p ticketing_app --test it -- browser::

## lint: formatting and clippy, as CI would want them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p ticketing_app

## stack-up: PostgreSQL and Redis (PG=ha: three PostgreSQL nodes under Patroni, synchronous_mode; REDIS=cluster)
stack-up:
	scripts/stack.sh up
	@if [ "$(PG)" = ha ]; then scripts/ha-stack.sh up; fi
	@if [ "$(REDIS)" = cluster ]; then scripts/redis-cluster.sh up; fi

stack-down:
	@if [ "$(PG)" = ha ]; then scripts/ha-stack.sh down; fi
	scripts/stack.sh down

stack-status:
	scripts/stack.sh status
	@if [ "$(PG)" = ha ]; then scripts/ha-stack.sh status; fi

## loadtest: k6 scenarios against a running stack (make loadtest SCENARIO=name BASE_URL=...)
loadtest:
	loadtest/run.sh "$(SCENARIO)" "$(BASE_URL)"

## loadtest-max: the highest sustained rate of one endpoint family (make loadtest-max FAMILY=catalog)
loadtest-max:
	loadtest/find-max.sh "$(FAMILY)" "$(BASE_URL)"

## fuzz: schemathesis against a running stack from its OpenAPI document; fails on any 5xx
fuzz:
	scripts/fuzz.sh "$(BASE_URL)"

## chaos: kill -9 Redis, then PostgreSQL, under k6 load on instances of its own; fails on a 500, a slow answer, no recovery or a lost write (INSTANCES=2: two instances behind HAProxy, one of them killed too; RATE=1000)
chaos:
	scripts/chaos-under-load.sh

## chaos-ha: kill -9 the PostgreSQL primary (Patroni, synchronous_mode) under k6 load on a cluster of its own; fails on a 500, a lost acknowledged write, money off its ledger or no rejoin (RATE=100 DURATION=60s)
chaos-ha:
	scripts/chaos-ha.sh

## soak: mixed traffic in waves for DURATION (30m) on instances of its own, sampled every 10 s, then a drain; fails on RSS growth, Redis not draining, a 5xx or PostgreSQL connections past the pool
DURATION ?= 30m
soak:
	DURATION=$(DURATION) scripts/soak.sh
