.PHONY: run test bench setup fmt clean

## Build the app and start the server on http://127.0.0.1:5001 serving it.
run:
	scripts/run.sh

## Every check: format, clippy, rustdoc, native, server (SQLite + PostgreSQL) and browser tests.
test:
	scripts/test.sh

## Benchmarks; they print their numbers (BENCH {json} lines).
bench:
	scripts/bench.sh

## Install the tools only.
setup:
	scripts/setup.sh all

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf dist
