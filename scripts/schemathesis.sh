#!/usr/bin/env bash
# Fuzzes Recount's HTTP API against its own OpenAPI document with
# schemathesis (every check, enabled in scripts/schemathesis/schemathesis.toml
# with the few per-operation exceptions it explains; a fixed seed; a time
# budget): once with a
# store's API key and once with a supervisor's token, against a real
# `recount serve --demo` on a fresh data directory. Fails on any finding.
# The rules JSON Schema cannot state are in scripts/schemathesis/.
#
#   bash scripts/schemathesis.sh            # uses target/debug/recount
#   RECOUNT_BIN=target/release/recount ST_MAX_EXAMPLES=100 bash scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${RECOUNT_BIN:-${CARGO_TARGET_DIR:-target}/debug/recount}
max_examples=${ST_MAX_EXAMPLES:-25}
max_time=${ST_MAX_TIME:-300}
if [ ! -x "$bin" ]; then
  cargo build --all-features --bin recount
fi
if ! command -v st >/dev/null 2>&1; then
  echo "schemathesis.sh: schemathesis is missing (bash scripts/setup.sh installs it)" >&2
  exit 1
fi

# The reports and the server's log stay here for whoever reads a failure.
work=target/schemathesis
rm -rf "$work"
mkdir -p "$work"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work/data"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
RECOUNT_DATA_DIR="$work/data" RECOUNT_LOG=warn "$bin" serve --demo --addr "127.0.0.1:$port" \
  >"$work/credentials.json" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 300); do
  curl -sf "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$base/healthz" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

field() { python3 -c "import json,sys; d=json.load(open('$work/credentials.json')); print($1)"; }
store_key=$(field "d['api_key']")
supervisor_password=$(field "[u for u in d['users'] if u['role']=='supervisor'][0]['password']")
supervisor_token=$(curl -sf -X POST "$base/api/v1/auth/token" -H 'content-type: application/json' \
  -d "{\"username\":\"supervisor\",\"password\":\"$supervisor_password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

status=0
for who in store supervisor; do
  case $who in
    store) secret=$store_key ;;
    supervisor) secret=$supervisor_token ;;
  esac
  # One worker: hypothesis describes its strategies by parsing source with
  # `ast`, which is not thread-safe on this Python ("AST constructor
  # recursion depth mismatch" with two workers).
  echo "schemathesis: as the $who ($max_examples examples per operation, at most $max_time s)" >&2
  if ! SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$root/scripts/schemathesis" \
    st --config-file "$root/scripts/schemathesis/schemathesis.toml" run "$base/api/openapi.json" \
      -H "Authorization: Bearer $secret" --max-examples "$max_examples" \
      --max-time "$max_time" --workers 1 --no-color >"$work/st-$who.txt" 2>&1; then
    status=1
    cat "$work/st-$who.txt"
  else
    tail -n 25 "$work/st-$who.txt"
  fi
done
if grep -q "panicked" "$work/server.log"; then
  echo "schemathesis.sh: the server panicked:" >&2
  grep -A5 "panicked" "$work/server.log" >&2
  status=1
fi
exit $status
