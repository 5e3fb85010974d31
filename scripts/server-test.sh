#!/usr/bin/env bash
# Runs persist-server's test suite against SQLite and a throwaway PostgreSQL cluster that this
# script starts on 127.0.0.1 (a free port, trust auth, data in a temp dir) and always stops.
#
#   scripts/server-test.sh [extra cargo test args]
#   PERSIST_SKIP_POSTGRES=1 scripts/server-test.sh    # SQLite only, explicitly
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

log() { printf '[server-test] %s\n' "$*" >&2; }

PG_DIR=""
PG_RUN_AS=()
cleanup() {
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
        "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
trap cleanup EXIT INT TERM

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    log "no free port found"
    return 1
}

start_postgres() {
    [ -x "$PG_BIN/initdb" ] || { log "$PG_BIN/initdb not found: install postgresql (scripts/setup.sh)"; exit 1; }
    PG_DIR="$(mktemp -d /tmp/persist-pg.XXXXXX)"
    if [ "$(id -u)" = 0 ]; then
        # PostgreSQL refuses to run as root: run it as the postgres OS user.
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_DIR"
        PG_RUN_AS=(runuser -u postgres --)
    fi
    local port
    port="$(free_port)"
    log "initdb in $PG_DIR (port $port)"
    "${PG_RUN_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 \
        --no-sync >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    # Throwaway cluster: durability of PostgreSQL itself is not under test, speed is welcome.
    "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c max_connections=400 \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$PG_DIR/server.log" >&2; exit 1; }
    "${PG_RUN_AS[@]}" "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -q -c \
        "CREATE DATABASE persist_test" postgres
    export PERSIST_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/persist_test"
    log "PostgreSQL ready: $PERSIST_TEST_POSTGRES_URL"
}

if [ "${PERSIST_SKIP_POSTGRES:-}" = 1 ]; then
    log "PERSIST_SKIP_POSTGRES=1: the PostgreSQL half of the suite is skipped"
else
    start_postgres
fi

cd "$ROOT"
cargo test -p persist-server --locked "$@"
