#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the whole test
# suite through ctest. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
BUILD_DIR="${BANK_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j2 "$@"
