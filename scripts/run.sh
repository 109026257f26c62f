#!/usr/bin/env bash
# Builds Recount and runs it on the embedded defaults (SQLite under ./data,
# media under ./data) with demo data: open http://127.0.0.1:8080 and sign in
# with the credentials printed on the first line. The demo is a build feature:
# a plain `cargo build` leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --features demo -- serve --demo "$@"
