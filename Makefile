# chatd workspace. Two commands matter for a newcomer: `make run` and `make test`.

# Test services (override on the command line or in the environment).
export CHAT_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export CHAT_TEST_REDIS_URL ?= redis://127.0.0.1:6379
export CHAT_TEST_S3_URL ?= http://127.0.0.1:5000

CARGO ?= cargo

.PHONY: abuse fuzz bench bench-compare bench-capacity media-bench run build release test fmt fmt-check clippy services unit e2e clean-test-dbs schemathesis

## Run chatd on the embedded backend (SQLite file + local media under ./data).
run:
	$(CARGO) run -p chat-server --bin chatd

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --workspace --bins

## Everything CI checks: formatting, lints, the API fuzzed against its OpenAPI document,
## all tests on SQLite and PostgreSQL.
test: fmt-check clippy services build schemathesis
	$(CARGO) test --workspace --all-targets

## The hostile-client cases (issue 16) alone, end to end against a real chatd on SQLite and
## on PostgreSQL, loopback only, bounded in time (they are part of `make test` too).
abuse: services build
	$(CARGO) test -p chat-e2e --test abuse
	$(CARGO) test -p chat-e2e --test push -- starve capped private

## schemathesis (pinned, from PyPI into target/schemathesis-venv) against a private chatd
## and its /openapi.json: no 5xx, every response as documented. SCHEMATHESIS_MAX_EXAMPLES,
## SCHEMATHESIS_SEED; ARGS go to `schemathesis run`.
schemathesis: build
	@bash scripts/schemathesis.sh $(ARGS)

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Start PostgreSQL and Redis if they are down; drop leftover test databases.
services:
	@bash scripts/ensure-services.sh

## Standard load scenario (release build): embedded, PostgreSQL + Redis, two instances.
## Tunables: BENCH_USERS, BENCH_RATE, BENCH_DURATION, BENCH_RAMP, BENCH_SCENARIOS.
media-bench:
	bash scripts/media-bench.sh

bench:
	@bash scripts/bench.sh

## Before/after: builds BASE and the working tree, alternates them on one scenario over a
## ladder of rates and prints both with the ratio (COMPARE_RATES, COMPARE_ROUNDS,
## COMPARE_SCENARIO, COMPARE_LOADGEN; see scripts/bench-compare.sh).
bench-compare:
	@BASE=$(BASE) bash scripts/bench-compare.sh

## Sustained send rate (delivery p99 < 100 ms) on PostgreSQL + Redis against pgbench's
## one-row durable INSERT on the same host, with the ratio (scripts/bench-capacity.sh).
bench-capacity:
	@bash scripts/bench-capacity.sh

## Fuzz WS frame decoding, cursors, JWTs and media sniffing/processing with cargo-fuzz
## (nightly toolchain; cargo-fuzz is installed if missing). FUZZ_SECONDS per target.
## A crash leaves its input in fuzz/artifacts/<target>/: turn it into a unit test.
FUZZ_SECONDS ?= 30
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in ws_frame cursor jwt media_sniff; do \
	  mkdir -p corpus/$$t; \
	  $(CARGO) +nightly fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 || exit 1; \
	done
