#!/usr/bin/env bash
# Client-side benchmarks of yewdux-persist (crates/bench): the engine natively on a virtual clock,
# then, in headless Chromium, IndexedDB write throughput, the whole runtime from dispatch to flush,
# the cost of one dispatch in a 10,000-item store, sync with a real server (10,000 items end
# to end; a change from device A to device B through the event stream), and against the
# alternatives: a typing burst (this crate, yewdux's own localStorage listener, one IndexedDB
# transaction per change, the raw-IndexedDB floor), the time a dispatch adds at 100/1,000/10,000
# items, and hydration of 10,000 and 100,000 saved records. Every case prints one `BENCH {json}` line;
# each part ends with a table. Numbers are read, never asserted: the script fails only when a
# benchmark crashes or a tool is missing.
#
# Needs the tools of `scripts/setup.sh test` (chromium, chromedriver, wasm-pack, wasm-bindgen).
# About 5 minutes of benchmarks after the build (an engine case stops after 45 s; the browser
# part is cut off after WASM_BINDGEN_TEST_TIMEOUT, 900 s by default).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh

for tool in cargo wasm-pack wasm-bindgen-test-runner chromium "$CHROMEDRIVER"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "client-bench: $tool not found; run scripts/setup.sh test first" >&2
        exit 1
    fi
done

printf '\n== engine (native)\n'
cargo run --release --locked -p persist-bench --bin engine-bench

printf '\n== browser (headless Chromium; sync against a release persist-server on loopback)\n'
PERSIST_TEST_SERVER_PROFILE=release WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-900}" \
    scripts/with-test-server.sh bash -c 'cd crates/bench && wasm-pack test --release --headless \
    --chrome --chromedriver "$CHROMEDRIVER" --mode no-install \
    -- --locked --test browser_bench -- --nocapture'
