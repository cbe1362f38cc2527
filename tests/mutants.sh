#!/usr/bin/env bash
# Mutation check: plant each mutant of tests/mutants/*.patch (a plausible
# one-line bug, described by its name) into a copy of this tree, one at a
# time, build it and run the test suite; a mutant is killed when a test
# fails. Run it before claiming a module is well tested. Not run in CI (it
# builds and tests once per mutant: about 1 to 4 minutes each here).
#   tests/mutants.sh [PATTERN]      only the mutants whose file name matches
# Env: MUTANT_TESTS  ctest -E pattern of tests to leave out (default: the
#                    Slurm test, which no mutant here targets)
# Prints a table: mutant, result, the first test that failed, seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
W=$(mktemp -d /tmp/vae_mutants_XXXXXX)
trap 'rm -rf "$W"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$W" 2>/dev/null
mkdir -p "$W/build"
cmake -S "$W" -B "$W/build" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build "$W/build" -j"$(nproc)" >/dev/null || { echo "the unmutated tree does not build"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
printf "%-42s %-9s %-24s %s\n" mutant result "caught by" seconds
killed=0 total=0
for patch in "$ROOT"/tests/mutants/*${1:-}*.patch; do
    name=$(basename "$patch" .patch)
    total=$((total + 1))
    start=$(date +%s)
    if ! patch -s -d "$W" -p1 <"$patch"; then
        printf "%-42s %-9s\n" "$name" "no-apply"
        continue
    fi
    if ! cmake --build "$W/build" -j"$(nproc)" >"$W/build.log" 2>&1; then
        result=killed by="the build"
    else
        (cd "$W/build" && ctest --stop-on-failure --timeout 300 -E "${MUTANT_TESTS:-e2e_slurm}" >"$W/ctest.log" 2>&1)
        by=$(sed -n 's/.*Test *#[0-9]*: \([a-z0-9_]*\) .*\*\*\*.*/\1/p' "$W/ctest.log" | head -1)
        if [ -n "$by" ]; then result=killed; else result=SURVIVED; by="-"; fi
    fi
    [ "$result" = killed ] && killed=$((killed + 1))
    printf "%-42s %-9s %-24s %s\n" "$name" "$result" "$by" $(($(date +%s) - start))
    patch -s -R -d "$W" -p1 <"$patch"
done
echo "$killed of $total mutants killed"
cmake --build "$W/build" -j"$(nproc)" >/dev/null
[ "$killed" -eq "$total" ]
