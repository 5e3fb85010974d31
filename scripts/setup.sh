#!/usr/bin/env bash
# Installs every tool `make run` / `make test` need, skipping what is already present.
# Safe to run repeatedly: a warm run only checks versions (a few seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS_DIR="${YP_TOOLS_DIR:-$HOME/.cache/yewdux-persist-tools}"
TRUNK_VERSION="0.21.14"
WASM_PACK_VERSION="0.15.1"
BINARYEN_VERSION="132"

log() { printf '[setup] %s\n' "$*" >&2; }

# The wasm-bindgen CLI must match the library version in Cargo.lock exactly.
wasm_bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock" 2>/dev/null || true
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

rust_tools() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        log "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
    for component in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
            rustup component add "$component"
        fi
    done
}

cargo_tool() { # binary, crate, version, extra cargo-install flags...
    local bin="$1" crate="$2" version="$3"; shift 3
    if command -v "$bin" >/dev/null 2>&1 && "$bin" --version 2>/dev/null | grep -q " $version\b"; then
        return 0
    fi
    log "cargo install $crate $version (takes minutes, once)"
    cargo install -q "$crate" --version "$version" "$@"
}

browser_tools() {
    apt_install chromium chromium-driver
}

wasm_tools() {
    local wb
    wb="$(wasm_bindgen_version)"
    [ -n "$wb" ] || { log "Cargo.lock has no wasm-bindgen; run cargo generate-lockfile"; exit 1; }
    # No --locked: the registry mirror here lags and the locked build wants versions it lacks.
    cargo_tool wasm-bindgen wasm-bindgen-cli "$wb"
    cargo_tool wasm-pack wasm-pack "$WASM_PACK_VERSION" --locked
}

trunk_tools() {
    cargo_tool trunk trunk "$TRUNK_VERSION" --locked
    # Debian's binaryen is too old for current rustc output; take 132 from npm.
    local bin="$TOOLS_DIR/node_modules/binaryen/bin/wasm-opt"
    if ! { [ -x "$bin" ] && "$bin" --version | grep -q "version $BINARYEN_VERSION"; }; then
        command -v npm >/dev/null 2>&1 || apt_install nodejs npm
        log "npm install binaryen@$BINARYEN_VERSION"
        mkdir -p "$TOOLS_DIR"
        npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" "binaryen@$BINARYEN_VERSION" >/dev/null
    fi
}

server_test_tools() {
    apt_install postgresql wrk
}

case "${1:-all}" in
    run) rust_tools; wasm_tools; trunk_tools ;;
    test) rust_tools; browser_tools; server_test_tools; wasm_tools; trunk_tools ;;
    bench) rust_tools; browser_tools; server_test_tools; wasm_tools ;;
    all) rust_tools; browser_tools; server_test_tools; wasm_tools; trunk_tools ;;
    *) log "usage: $0 [run|test|bench|all]"; exit 2 ;;
esac
