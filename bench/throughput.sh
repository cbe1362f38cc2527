#!/usr/bin/env bash
# Training throughput of vae_dist's modes on this machine, in one invocation:
# 1 rank, 2 ranks with the shared-memory reduction and sliced optimizer (the
# default, with sliced parameter gradients where they pay, as for this model;
# np2_summed: whole gradients summed over the node, comm.sliced_gradients =
# false), 2 ranks with one blocking allreduce, 2 ranks with the overlapped
# (bucketed) allreduce, the reproducible (int64) mode on 1 and 2 ranks, and
# 1 rank with 2 OpenBLAS threads. Each configuration runs REPS times,
# interleaved (so machine noise hits all alike), measured as bench/compare.sh
# measures (bench/lib.sh: the same step count, warm-up and thread check);
# the table gives the median over runs, its ratio against the 1-rank median,
# the range of the per-round ratio, per-phase milliseconds per step (with the
# parameter gradients' part of the compute, grads_ms), and the
# ranks' compute spread (slowest less fastest, per step).
# Each round also measures the parts of a 2-rank step, each without the
# other rank (bench/lib.sh parts_round): two independent 1-rank runs of half
# the batch at once (a strong-scaled rank's compute while the other core
# works too) and the node exchange microbenchmark. The speedup they predict
# is the 1-rank step over (that compute + half the 1-rank optimizer and
# data + the exchange); a third run, one half-batch run with the other core
# idle, says what the busy core costs that compute. And each round measures
# what this machine gives two cores at once without vae_dist's code
# (vae_corun_bench: register arithmetic, and Adam over a 2-rank slice of the
# parameters, each alone and in two processes at once): the ceiling of any
# 2-rank speedup here.
# OpenBLAS's kernels: BLAS_KERNELS, default its own choice (bench/lib.sh).
#   [BLAS_KERNELS=Haswell] bench/throughput.sh [REPS=5] [STEPS=300] [extra --set ...]
# Needs build/vae_dist and data/fashion-mnist.h5 (scripts/run-main.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPS=${1:-5}; STEPS=${2:-300}; shift $(( $# > 2 ? 2 : $# )) || true
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=$(mktemp -d /tmp/vae_bench_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
# name:ranks:OpenBLAS threads per rank:extra flags
configs=("np1:1:1:" "np2_shared:2:1:" "np2_summed:2:1:--set comm.sliced_gradients=false"
         "np2_allreduce:2:1:--set comm.shared_memory=false"
         "np2_overlap:2:1:--set comm.overlap=true"
         "np1_repro:1:1:--set train.reproducible=true" "np2_repro:2:1:--set train.reproducible=true"
         "np1_2threads:1:2:")
B=$(printf '%s\n' "$@" | sed -n 's/^train\.batch_size=//p' | tail -1)
bytes=$(grad_bytes "$OUT/count" --config configs/default.ini "$@")
for rep in $(seq "$REPS"); do
    for c in "${configs[@]}"; do
        IFS=: read -r name np threads extra <<<"$c"
        # shellcheck disable=SC2086
        echo "$name $rep $(vae_run "$OUT/r" "$np" "$threads" "$STEPS" --config configs/default.ini $extra "$@")" >>"$OUT/runs.txt"
    done
    echo "parts $rep $(parts_round "$OUT/h" "$STEPS" $((${B:-128} / 2)) "$bytes" --config configs/default.ini "$@")" \
        >>"$OUT/runs.txt"
    build/bench/vae_corun_bench --rounds 1 --params $((bytes / 8)) |
        sed 's/[{}",]//g' | awk -v r="$rep" '{ for (i = 1; i < NF; i++) v[$i] = $(i + 1)
            print "machine", r, v["arith_pair_speedup:"], v["adam_pair_speedup:"], v["adam_alone_ms:"],
                  v["adam_pair_ms:"], v["arith_pair_spread:"] }' >>"$OUT/runs.txt"
done
col() { awk -v n="$1" -v k="$2" '$1 == n { print $k }' "$OUT/runs.txt" | median; }
rng() { awk -v n="$1" -v k="$2" '$1 == n { print $k }' "$OUT/runs.txt" | range; }
echo "model 784-400-20, global batch 128, $STEPS steps, $REPS runs each, $(nproc) cores, OpenBLAS $KERNELS kernels"
printf "%-14s %10s %8s %11s %12s %9s %12s %10s %8s %10s\n" config samples/s vs_np1 range compute_ms grads_ms reduction_ms optim_ms data_ms spread_ms
base=$(col np1 3)
json="{\"blas_kernels\": \"$KERNELS\", "
for c in "${configs[@]}"; do
    name=${c%%:*}
    rr=$(join <(awk -v n="$name" '$1 == n { print $2, $3 }' "$OUT/runs.txt" | sort) \
              <(awk '$1 == "np1" { print $2, $3 }' "$OUT/runs.txt" | sort) | awk '{ print $2 / $3 }' | range)
    s=$(col "$name" 3)
    printf "%-14s %10.0f %8.3f %11s %12.3f %9.3f %12.3f %10.3f %8.3f %10.3f\n" "$name" "$s" "$(ratio "$s" "$base")" "$rr" \
        "$(col "$name" 4)" "$(col "$name" 9)" "$(col "$name" 5)" "$(col "$name" 6)" "$(col "$name" 7)" "$(col "$name" 8)"
    json+="\"$name\": {\"samples_per_s\": $s, \"ratio_vs_np1\": $(ratio "$s" "$base"), \"ratio_range\": \"$rr\", \"compute_ms\": $(col "$name" 4), \"grads_ms\": $(col "$name" 9), \"allreduce_wait_ms\": $(col "$name" 5), \"optim_ms\": $(col "$name" 6), \"data_ms\": $(col "$name" 7), \"compute_spread_ms\": $(col "$name" 8)}, "
done
# The speedup the parts predict, per round, against that round's 1-rank run.
pred=$(join <(awk '$1 == "np1" { $1 = ""; print }' "$OUT/runs.txt" | sort) \
            <(awk '$1 == "parts" { print $2, $3, $4 }' "$OUT/runs.txt" | sort) |
       while read -r _ s c r o d _ pc pe; do from_parts "$s $c $r $o $d" "$pc $pe"; echo; done)
echo "2 ranks from their parts: $(median <<<"$pred")x ($(range <<<"$pred")) = 1-rank step / (compute at batch" \
     "$((${B:-128} / 2)) with both cores busy, $(col parts 3) ms + half the 1-rank optimizer and data + node exchange," \
     "$(col parts 4) ms)"
echo "compute at batch $((${B:-128} / 2)) on 1 rank: $(col parts 5) ms with the other core idle, $(col parts 3) ms with it" \
     "busy ($(ratio "$(col parts 3)" "$(col parts 5)")x)"
echo "this machine, two processes at once against one (vae_corun_bench): register arithmetic $(col machine 3)x" \
     "($(rng machine 3)), Adam over $((bytes / 8)) parameters $(col machine 4)x ($(rng machine 4)): $(col machine 5) ms" \
     "alone, $(col machine 6) ms the slower of two; the slower core's arithmetic $(col machine 7)x the faster's time"
json+="\"np2_from_parts\": {\"ratio\": $(median <<<"$pred"), \"ratio_range\": \"$(range <<<"$pred")\", \"corun_half_compute_ms\": $(col parts 3), \"alone_half_compute_ms\": $(col parts 5), \"node_exchange_ms\": $(col parts 4)}, "
json+="\"machine_two_cores\": {\"arith_speedup\": $(col machine 3), \"arith_speedup_range\": \"$(rng machine 3)\", \"adam_params\": $((bytes / 8)), \"adam_speedup\": $(col machine 4), \"adam_speedup_range\": \"$(rng machine 4)\", \"adam_alone_ms\": $(col machine 5), \"adam_pair_ms\": $(col machine 6), \"arith_spread\": $(col machine 7)}, "
echo "${json%, }}" >bench/last_throughput.json
echo "runs: $(wc -l <"$OUT/runs.txt"); JSON: bench/last_throughput.json"
