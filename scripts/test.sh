#!/usr/bin/env bash
# Runs Recount's whole test suite: unit tests, integration tests over real
# HTTP on SQLite and PostgreSQL, media tests on real video files, browser tests;
# with every feature, so the demo's and the bench's code is tested too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/postgres.sh
# Databases left behind by interrupted runs.
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'rt\_%' OR datname LIKE 'recount\_bench\_%'" |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"; done
cargo nextest run --all-features --all-targets --no-fail-fast "$@"
# Without arguments (the whole suite): the API against its own OpenAPI
# document, with the binary the tests just built.
if [ $# -eq 0 ]; then
  bash scripts/schemathesis.sh
fi
