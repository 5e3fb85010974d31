#!/usr/bin/env bash
# `make test`: installs what is missing, then runs every check and test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "setup"
scripts/setup.sh test

step "format"
cargo fmt --all --check

step "module dependencies (no import cycles)"
for crate in protocol engine persist server; do
    scripts/module-deps.py "crates/$crate/src" >/dev/null \
        || { scripts/module-deps.py "crates/$crate/src"; exit 1; }
done

step "the engine depends on no browser or UI crate"
# The compiler keeps persist-engine free of I/O as long as it cannot name such a crate.
if cargo tree -p persist-engine -e normal,build --prefix none --locked \
    | grep -E '^(yew|yewdux|web-sys|js-sys|wasm-bindgen|gloo|indexed_db_futures)[ -]'; then
    echo "persist-engine must not depend on the crates above"; exit 1
fi

step "clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "clippy (wasm32)"
cargo clippy --target wasm32-unknown-unknown -p yewdux-persist -p persist-app -p persist-example-notes \
    --all-targets --locked -- -D warnings

step "rustdoc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
RUSTDOCFLAGS="-D warnings --cfg=web_sys_unstable_apis" \
    cargo doc --target wasm32-unknown-unknown -p yewdux-persist --no-deps --locked

step "packaging: the library crates are ready to publish"
# `cargo package` verifies each crate against the others' packaged sources, built as registry
# crates in target/debug. Cargo takes a registry crate of a given version as immutable: it reuses
# the extracted source and the compiled library of persist-engine 0.1.0 / persist-protocol 0.1.0
# from an earlier run, although they change from commit to commit under the same version. Drop
# those copies (the two small crates are rebuilt in seconds).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
rm -rf "$TARGET_DIR"/package "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/persist-protocol-* \
    "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/persist-engine-* \
    "$TARGET_DIR"/debug/.fingerprint/persist-protocol-* "$TARGET_DIR"/debug/.fingerprint/persist-engine-*
cargo package -p persist-protocol -p persist-engine -p yewdux-persist --locked --allow-dirty --quiet

step "native tests"
cargo test --workspace --exclude persist-server --exclude persist-e2e --locked

step "server tests (SQLite and PostgreSQL)"
if [ -x scripts/server-test.sh ]; then
    scripts/server-test.sh
else
    cargo test -p persist-server --locked
fi

step "browser tests: yewdux-persist (headless Chromium; sync against a real persist-server)"
scripts/with-test-server.sh bash -c 'cd crates/persist && wasm-pack test --headless --chrome \
    --chromedriver "$CHROMEDRIVER" --mode no-install -- --locked'

step "browser tests: the app (headless Chromium)"
wasm-pack test --headless --chrome --chromedriver "$CHROMEDRIVER" --mode no-install -- --locked

step "end-to-end: the served app in headless Chromium"
scripts/e2e-test.sh

step "done"
