#!/usr/bin/env bash
# Training throughput of vae_dist on this machine, in one invocation:
# 1 rank, 2 ranks with the shared-memory reduction and sliced optimizer (the
# default), 2 ranks with one blocking allreduce, 2 ranks with the overlapped
# (bucketed) allreduce, the reproducible (int64) mode on 1 and 2 ranks, and
# the hybrid setting of 1 rank with 2 OpenBLAS threads.
# Each configuration runs REPS times, interleaved (so machine noise hits all
# alike); a run's figure is the mean samples/s of its step events after the
# first (warm-up); the table gives the median over runs, ratios against the
# 1-rank median, and per-phase milliseconds per step.
#   bench/throughput.sh [REPS=5] [STEPS=400] [extra --set ...]
# Needs build/vae_dist and data/fashion-mnist.h5 (scripts/run-main.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-5}; STEPS=${2:-400}; shift $(( $# > 2 ? 2 : $# )) || true
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=$(mktemp -d /tmp/vae_bench_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
# name:ranks:OpenBLAS threads per rank:extra flags
configs=("np1:1:1:" "np2_shared:2:1:" "np2_allreduce:2:1:--set comm.shared_memory=false"
         "np2_overlap:2:1:--set comm.overlap=true"
         "np1_repro:1:1:--set train.reproducible=true" "np2_repro:2:1:--set train.reproducible=true"
         "np1_2threads:1:2:")
for rep in $(seq "$REPS"); do
    for c in "${configs[@]}"; do
        IFS=: read -r name np threads extra <<<"$c"
        OPENBLAS_NUM_THREADS=$threads mpirun -x OPENBLAS_NUM_THREADS --bind-to none -np "$np" build/vae_dist train --config configs/default.ini --resume none \
            --set run.dir="$OUT/$name-$rep" --set train.max_steps="$STEPS" --set train.log_every=100 \
            --set ckpt.every_seconds=0 $extra "$@" >/dev/null 2>&1
        # mean over step events after the first: samples/s and phases
        awk -v n="$name" '/"event": "step"/ { if (++k == 1) next;
            for (i = 1; i <= NF; i++) { gsub(/[",{}]/, "", $i) }
            for (i = 1; i < NF; i++) v[$i] += $(i + 1); m++ }
            END { printf "%s %.1f %.3f %.3f %.3f %.3f\n", n, v["samples_per_s:"] / m,
                  1e3 * v["t_compute:"] / m, 1e3 * v["t_allreduce_wait:"] / m,
                  1e3 * v["t_optim:"] / m, 1e3 * v["t_data:"] / m }' \
            "$OUT/$name-$rep/metrics.jsonl" >>"$OUT/runs.txt"
    done
done
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
base=$(awk '$1 == "np1" { print $2 }' "$OUT/runs.txt" | median)
echo "model 784-400-20, global batch 128, $STEPS steps, $REPS runs each, $(nproc) cores"
printf "%-14s %10s %8s %12s %12s %10s %8s\n" config samples/s vs_np1 compute_ms allreduce_ms optim_ms data_ms
json="{"
for c in "${configs[@]}"; do
    name=${c%%:*}
    s=$(awk -v n="$name" '$1 == n { print $2 }' "$OUT/runs.txt" | median)
    col() { awk -v n="$name" -v k="$1" '$1 == n { print $k }' "$OUT/runs.txt" | median; }
    printf "%-14s %10.0f %8.3f %12.3f %12.3f %10.3f %8.3f\n" "$name" "$s" "$(echo "$s / $base" | bc -l)" \
        "$(col 3)" "$(col 4)" "$(col 5)" "$(col 6)"
    json+="\"$name\": {\"samples_per_s\": $s, \"ratio_vs_np1\": $(echo "$s / $base" | bc -l | cut -c1-6), \"compute_ms\": $(col 3), \"allreduce_wait_ms\": $(col 4), \"optim_ms\": $(col 5)}, "
done
echo "${json%, }}" >bench/last_throughput.json
echo "runs: $(wc -l <"$OUT/runs.txt"); JSON: bench/last_throughput.json"
