#!/usr/bin/env bash
# Configures and builds into build/ (or $BANK_BUILD_DIR): everything, or only
# the targets named as arguments (scripts/build.sh command-service bankctl).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BANK_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BANK_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" ${1:+--target "$@"}
