#!/usr/bin/env bash
# The whole test suite: install, check the C layout (clang-format), build
# (warnings are errors), run every test
# with ctest (cmocka unit tests, 1-8 rank MPI tests, end-to-end fault tests),
# then the bad-input, checkpoint and gradient tests again under
# AddressSanitizer and UndefinedBehaviorSanitizer, and last the libFuzzer
# targets (config, dataset, checkpoint) for FUZZ_SECONDS each (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --torch
# The layout of every C file is .clang-format's (STYLE.md).
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900)
cmake -S . -B build-asan -DVAE_SANITIZE=ON -DVAE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-asan -j"$(nproc)" >/dev/null
# Leaks of our own allocations fail the run; what Open MPI and HDF5 keep until
# exit is suppressed by library (tests/lsan.supp), with Open MPI's components
# kept loaded and stacks unwound without frame pointers (glibc has none), so
# that every frame has a name to match (tests/keep_loaded.c).
cd build-asan
LD_PRELOAD=$PWD/tests/libvae_keep_loaded.so ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0:fast_unwind_on_malloc=0 \
    LSAN_OPTIONS=suppressions=$PWD/../tests/lsan.supp UBSAN_OPTIONS=halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -R "test_config|test_data|test_grad|test_eval|test_ckpt|test_dist|cli_errors|guards|tools|rundir|hostile"
cd ..
# The fuzzers: clang's libFuzzer over the config reader and the dataset and
# checkpoint readers, regression inputs first (tests/fuzz/run.sh).
CC=clang cmake -S . -B build-fuzz -DVAE_FUZZ=ON -DVAE_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
tests/fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-60}" build-fuzz/artifacts
