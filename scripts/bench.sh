#!/usr/bin/env bash
# `make bench`: benchmarks that print their numbers (a table and `BENCH {json}` lines).
# Goals are checked by reading the numbers, never by assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

scripts/setup.sh bench
scripts/server-bench.sh
scripts/client-bench.sh
