#!/usr/bin/env bash
# Installs what Recount needs on a fresh Debian 12 machine, only where missing:
# the C libraries FFmpeg bindings build against, the ffmpeg CLI (fixtures and
# benchmark baselines), Chromium (browser tests), wrk (range-serving bench),
# PostgreSQL (tests), cargo-nextest (test runner), moto's S3 server (S3 blob
# storage tests, tests/storage_s3.rs), webdataset (export tests), schemathesis
# (the API contract run). Safe to run
# repeatedly.
set -euo pipefail

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev \
           libswscale-dev libavfilter-dev libavdevice-dev libswresample-dev ffmpeg \
           chromium chromium-driver wrk postgresql; do
  have_pkg "$pkg" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

if ! python3 -c "import moto.server" >/dev/null 2>&1; then
  echo "setup: installing moto[server]" >&2
  python3 -m pip install --quiet 'moto[server]'
fi

# The contract run fuzzes the API against its OpenAPI document
# (scripts/schemathesis.sh, called by scripts/test.sh).
if ! command -v st >/dev/null 2>&1; then
  echo "setup: installing schemathesis" >&2
  python3 -m pip install --quiet schemathesis
fi

# The training-data export's shards must read with the webdataset package
# training code uses (tests/export.rs).
if ! python3 -c "import webdataset" >/dev/null 2>&1; then
  echo "setup: installing webdataset" >&2
  python3 -m pip install --quiet webdataset
fi
