#!/usr/bin/env bash
# The whole test suite: install, build (warnings are errors), run every test
# with ctest (unit tests in cmocka, 1-8 rank MPI tests, end-to-end fault tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900
