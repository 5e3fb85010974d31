#!/usr/bin/env bash
# Runs a command with a real persist-server beside it, for the browser tests that sync: dev mode
# (a token at /dev-config.json, CORS from loopback origins), a fresh SQLite database, a free port
# on 127.0.0.1. The command sees the server's address in PERSIST_TEST_SERVER (the browser tests
# read it when they are compiled). The server stops when the command ends.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# PERSIST_TEST_SERVER_PROFILE=release for benchmarks (the tests use the dev build).
PROFILE="${PERSIST_TEST_SERVER_PROFILE:-debug}"
if [ "$PROFILE" = release ]; then
    cargo build -q --release -p persist-server --locked
else
    cargo build -q -p persist-server --locked
fi
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$TARGET/$PROFILE/persist-server" serve --dev --listen "127.0.0.1:$PORT" \
    --database "$DATA/test.sqlite3" --rate-limit 0 --anonymous-rate-limit 0 --log warn &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null
export PERSIST_TEST_SERVER="http://127.0.0.1:$PORT"
"$@"
