#!/usr/bin/env bash
# Run the libFuzzer targets of a VAE_FUZZ build: first every regression file
# (inputs that once crashed, tests/fuzz/regress/TARGET/), then SECONDS of
# fuzzing from the committed seed corpus (tests/fuzz/corpus/TARGET/), under
# ASan, UBSan and LeakSanitizer. A crash, a leak, a hang (> 10 s on one
# input) or an abort fails the run and leaves the input in OUT.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS=60] [OUT=fuzz-artifacts]
# FUZZ_SEED picks libFuzzer's seed (default 1: CI explores the same inputs
# every run; set another to explore new ones).
set -uo pipefail
build=$1
seconds=${2:-60}
out=${3:-fuzz-artifacts}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# A malloc over 1 GiB returns NULL (as on a machine without the memory), so
# that sizes read from a file meet the code's own out-of-memory checks.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=1024:fast_unwind_on_malloc=0
export LSAN_OPTIONS=suppressions=$here/../lsan.supp
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=0
for t in config dataset ckpt h5struct; do
    bin="$build/tests/fuzz/fuzz_$t"
    opts=(-close_fd_mask=3 -rss_limit_mb=2048 -malloc_limit_mb=4096 -timeout=10 -artifact_prefix="$out/$t-")
    if compgen -G "$here/regress/$t/*" >/dev/null; then
        if "$bin" "${opts[@]}" "$here"/regress/"$t"/* >"$out/$t-regress.log" 2>&1; then
            echo "ok - fuzz_$t: $(ls "$here/regress/$t" | wc -l) regression inputs pass"
        else
            echo "not ok - fuzz_$t: a regression input fails ($out/$t-regress.log)"; failed=1
        fi
    fi
    corpus=$(mktemp -d "$out/corpus-$t-XXXXXX")
    cp "$here/corpus/$t"/* "$corpus/"
    "$bin" "${opts[@]}" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" -print_final_stats=1 "$corpus" \
        >"$out/$t.log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out/$t.log" | tail -1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")
    if [ "$rc" -eq 0 ]; then
        echo "ok - fuzz_$t: ${seconds} s, ${runs:-?} executions, ${done_line#*DONE}"
    else
        echo "not ok - fuzz_$t: exit $rc; input and log in $out (add the input to tests/fuzz/regress/$t/ with the fix)"
        grep -E 'ERROR|SUMMARY|^    #[0-9] ' "$out/$t.log" | head -20
        failed=1
    fi
    rm -rf "$corpus"
done
exit "$failed"
