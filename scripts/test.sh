#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the whole test
# suite through ctest:
#   1. every test (unit, integration, e2e) on the normal build (build/);
#   2. the unit, integration, end-to-end and fault tests again with
#      AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/: the
#      services the e2e and fault tests start are the sanitized builds);
#   3. the libFuzzer targets, each for a bounded time (build-fuzz/, clang).
# With arguments, only step 1 runs and the arguments go to ctest
# (e.g. ./scripts/test.sh -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
./scripts/install-deps.sh
./scripts/build.sh
JOBS="$(nproc)"

echo "== tests"
(cd "${BANK_BUILD_DIR:-build}" && ctest --output-on-failure -j2 "$@")
[ $# -eq 0 ] || exit 0

echo "== unit, integration, e2e and fault tests under ASan and UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBANK_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$JOBS"
(cd build-asan &&
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp" \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j2 -L 'unit|integration|e2e|faults')

echo "== fuzz targets"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DBANK_FUZZ=ON \
  -DBANK_BUILD_TESTS=OFF -DBANK_FUZZ_SECONDS="${BANK_FUZZ_SECONDS:-30}" >/dev/null
cmake --build build-fuzz -j"$JOBS" --target request_validation_fuzz event_decode_fuzz
(cd build-fuzz && ctest --output-on-failure -L fuzz)
