.PHONY: run test bench setup screenshots fmt clean

## Build the app and start the server on http://127.0.0.1:5001 serving it.
run:
	scripts/run.sh

## Every check: format, clippy, rustdoc, native, server (SQLite + PostgreSQL) and browser tests.
test:
	scripts/test.sh

## Benchmarks; they print their numbers (BENCH {json} lines).
bench:
	scripts/bench.sh

## The README's screenshots: docs/app-sync.png from a running `make run`, and docs/conflicts.png
## from the end-to-end conflict test (two browsers, a real conflict, the conflict center).
screenshots:
	python3 scripts/screenshots.py
	PERSIST_SCREENSHOTS=$(CURDIR)/docs scripts/e2e-test.sh resolved_in_the_conflict_center

## Install the tools only.
setup:
	scripts/setup.sh all

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf dist
