#!/usr/bin/env bash
# The whole test suite: install, check the C layout (clang-format), build
# (warnings are errors), run every test
# with ctest (cmocka unit tests, 1-8 rank MPI tests, end-to-end fault tests),
# then the bad-input, checkpoint and gradient tests again under
# AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The layout of every C file is .clang-format's (STYLE.md).
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900)
cmake -S . -B build-asan -DVAE_SANITIZE=ON -DVAE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-asan -j"$(nproc)" >/dev/null
# Open MPI's own allocations are not ours to free: leaks are not checked.
cd build-asan
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -R "test_config|test_data|test_grad|test_ckpt|cli_errors|guards"
