#!/usr/bin/env bash
# Runs `recount bench queue` and `recount bench ingest` with two builds of
# recount, alternating (A, B, B, A, A, B, …) so that both see the same machine,
# on SQLite and PostgreSQL, and prints each figure's median per build and the
# ratio B/A. Usage:
#   scripts/bench-compare.sh OLD_BINARY NEW_BINARY [ROUNDS]
# Binaries must be release builds with the bench harness (`--features bench`).
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
pg=${RECOUNT_BENCH_PG:-postgres://postgres@127.0.0.1:5432/test}
out=$(mktemp -d)
queue_args=(bench queue --tasks 20000 --duration 10 --ceiling-duration 5 --backend both)
ingest_args=(bench ingest --events 5000 --backend both)
run() { # label binary kind
  local label=$1 bin=$2 kind=$3 args
  if [ "$kind" = queue ]; then args=("${queue_args[@]}"); else args=("${ingest_args[@]}"); fi
  dir=$(mktemp -d)
  (cd "$dir" && "$bin" --database-url "$pg" "${args[@]}") | tail -n 1 >>"$out/$label-$kind.jsonl"
  rm -rf "$dir"
}
for i in $(seq 1 "$rounds"); do
  for kind in queue ingest; do
    if [ $((i % 2)) -eq 1 ]; then run old "$old" $kind; run new "$new" $kind
    else run new "$new" $kind; run old "$old" $kind; fi
  done
  echo "round $i of $rounds done" >&2
done
python3 - "$out" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(label, kind):
    return [json.loads(l) for l in (out / f"{label}-{kind}.jsonl").read_text().splitlines() if l.strip()]
def figures(kind, runs):
    rows = {}
    for r in runs:
        for b in r["results"]:
            name = b.get("backend", "?")
            if kind == "queue":
                rows.setdefault(f"queue {name} http pairs/s", []).append(b["http"]["pairs_per_s"])
                rows.setdefault(f"queue {name} ceiling pairs/s", []).append(b["ceiling"]["pairs_per_s"])
            else:
                rows.setdefault(f"ingest {name} single events/s", []).append(b["single"]["events_per_s"])
                rows.setdefault(f"ingest {name} batch events/s", []).append(b["batch"]["events_per_s"])
    return rows
print(f"{'figure':40} {'old (median)':>14} {'new (median)':>14} {'new/old':>8}")
for kind in ("queue", "ingest"):
    a, b = figures(kind, load("old", kind)), figures(kind, load("new", kind))
    for key in a:
        ma, mb = statistics.median(a[key]), statistics.median(b[key])
        print(f"{key:40} {ma:14.1f} {mb:14.1f} {mb / ma:8.3f}   runs old {a[key]} new {b[key]}")
PY
