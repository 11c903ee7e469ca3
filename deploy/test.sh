#!/usr/bin/env bash
# One command from a fresh Debian 12 machine: install what is missing, build,
# run every test (unit and integration, the latter against a real Mosquitto
# each test starts on a free loopback port).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
