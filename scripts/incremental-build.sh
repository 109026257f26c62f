#!/usr/bin/env bash
# Times the incremental debug build of every target with every feature (what
# scripts/test.sh builds) after one function in the domain changes: a probe function's body
# is edited in FILE, the build timed, and the file restored. Prints the median
# of RUNS builds in seconds. Usage: scripts/incremental-build.sh [FILE] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-server/domain/consensus.rs}
runs=${2:-3}
cp "$file" "$file.orig"
trap 'mv "$file.orig" "$file"' EXIT
cargo build --all-features --all-targets -q
times=()
for i in $(seq 1 "$runs"); do
  cp "$file.orig" "$file"
  printf '\n#[allow(dead_code)]\nfn build_probe() -> u64 {\n    %d\n}\n' "$RANDOM$i" >>"$file"
  start=$(date +%s%N)
  cargo build --all-features --all-targets -q
  end=$(date +%s%N)
  times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')")
  echo "run $i: ${times[-1]} s" >&2
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print "median", a[int((NR+1)/2)], "s over", NR, "builds"}'
