#!/usr/bin/env bash
# vae_dist against the GEMM bound and against PyTorch, like for like, in one
# invocation. For each model (784-400-20 at global batch 128; 784-1024-1024-64
# at 256), REPS interleaved rounds of:
#   vae_dist 1 rank x 1 thread      against PyTorch 1.13, 1 process x 1 thread
#   vae_dist 2 ranks x 1 thread     against its 1 rank, and PyTorch DDP (gloo) 2 x 1 thread
#   vae_dist 1 rank x 2 threads     against PyTorch 1 process x 2 threads (2 intra-op
#                                   threads, 1 OpenBLAS thread: PyTorch's best on 2
#                                   cores here, bench/bench_threads.py says why)
#   the GEMM bound (the step's sgemm calls alone, 1 thread)
#   the 2-rank speedup that its parts predict here (bench/lib.sh
#                                   parts_round: two 1-rank runs of half the
#                                   batch at once, and the node exchange)
# Threads are pinned on both sides and checked through the libraries' own
# queries (bench/lib.sh: vae_dist's start event reports openblas_get_num_threads;
# bench/bench_threads.py: OpenBLAS and torch's pool), so "1 thread" PyTorch
# is not OpenBLAS on every core; so are OpenBLAS's kernels (BLAS_KERNELS,
# default OpenBLAS's own choice for the CPU; bench/lib.sh). Each ratio is
# taken within a round; the tables give medians over rounds and the range of
# each ratio over rounds.
# Writes bench/last_compare.json.
#   [BLAS_KERNELS=Haswell] bench/compare.sh [REPS=5] [STEPS=300]
# Needs build/ and data/fashion-mnist.h5 (scripts/run-main.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPS=${1:-5}; STEPS=${2:-300}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
W=$(mktemp -d /tmp/vae_compare_XXXXXX)
trap 'rm -rf "$W"' EXIT
TORCH=0
/usr/bin/python3 -c "import torch" 2>/dev/null && TORCH=1
torch_sps() { # WORLD THREADS HIDDEN LATENT BATCH (OpenBLAS: 1 thread)
    local port=$((29500 + RANDOM % 1000)) r
    local args=(--threads "$2" --blas-threads 1 --hidden "$3" --latent "$4" --batch "$5" --steps "$STEPS" --warmup 50)
    for r in $(seq 1 $(($1 - 1))); do
        RANK=$r WORLD_SIZE=$1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port /usr/bin/python3 bench/pytorch_bench.py \
            "${args[@]}" >/dev/null &
    done
    RANK=0 WORLD_SIZE=$1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port /usr/bin/python3 bench/pytorch_bench.py "${args[@]}" |
        sed -n 's/.*"samples_per_s": \([0-9.]*\).*/\1/p'
    wait
}
json="{"
for model in "small:400:20:128" "large:1024,1024:64:256"; do
    IFS=: read -r name hidden latent batch <<<"$model"
    set_model=(--set model.hidden="$hidden" --set model.latent="$latent" --set train.batch_size="$batch")
    bytes=$(grad_bytes "$W/count" "${set_model[@]}")
    for rep in $(seq "$REPS"); do
        l1=$(vae_run "$W/r" 1 1 "$STEPS" "${set_model[@]}")
        v1=${l1%% *}
        v2=$(vae_run "$W/r" 2 1 "$STEPS" "${set_model[@]}" | cut -d' ' -f1)
        v1t2=$(vae_run "$W/r" 1 2 "$STEPS" "${set_model[@]}" | cut -d' ' -f1)
        gb=$(OPENBLAS_NUM_THREADS=1 build/bench/vae_gemm_bench --hidden "$hidden" --latent "$latent" \
            --batch "$batch" --reps 100 | sed -n 's/.*"samples_per_s_bound": \([0-9.]*\).*/\1/p')
        b2=$(from_parts "$l1" "$(parts_round "$W/h" "$STEPS" $((batch / 2)) "$bytes" "${set_model[@]}")")
        p1=NaN; p2=NaN; pt2=NaN
        if [ $TORCH = 1 ]; then
            p1=$(torch_sps 1 1 "$hidden" "$latent" "$batch")
            p2=$(torch_sps 2 1 "$hidden" "$latent" "$batch")
            pt2=$(torch_sps 1 2 "$hidden" "$latent" "$batch")
        fi
        echo "$v1 $v2 $v1t2 $gb $p1 $p2 $pt2 $(ratio "$v1" "$p1") $(ratio "$v2" "$v1") $(ratio "$v2" "$p2") $(ratio "$v1t2" "$pt2") $(ratio "$v1" "$gb") $b2" >>"$W/$name"
    done
    col() { awk -v k="$1" '{ print $k }' "$W/$name" | median; }
    rng() { awk -v k="$1" '{ print $k }' "$W/$name" | range; }
    echo "model 784-${hidden//,/-}-$latent, global batch $batch, $STEPS steps, OpenBLAS $KERNELS kernels, median of $REPS rounds (range over rounds):"
    printf "  %-38s %9.0f samples/s\n" "GEMM bound (sgemm alone, 1 thread)" "$(col 4)"
    printf "  %-38s %9.0f samples/s  %s of the bound (%s); %s x PyTorch 1 thread (%s)\n" "vae_dist 1 rank x 1 thread" \
        "$(col 1)" "$(col 12)" "$(rng 12)" "$(col 8)" "$(rng 8)"
    printf "  %-38s %9.0f samples/s  %s x vae_dist 1 rank (%s); %s x PyTorch DDP 2 x 1 (%s)\n" \
        "vae_dist 2 ranks x 1 thread" "$(col 2)" "$(col 9)" "$(rng 9)" "$(col 10)" "$(rng 10)"
    printf "  %-38s %9s            %s x vae_dist 1 rank (%s)\n" "2 ranks from their parts (lib.sh)" "" \
        "$(col 13)" "$(rng 13)"
    printf "  %-38s %9.0f samples/s  %s x PyTorch 1 x 2 threads (%s)\n" "vae_dist 1 rank x 2 threads" "$(col 3)" \
        "$(col 11)" "$(rng 11)"
    printf "  %-38s %9s samples/s\n" "PyTorch 1.13, 1 process x 1 thread" "$(col 5)"
    printf "  %-38s %9s samples/s\n" "PyTorch 1.13 DDP gloo, 2 x 1 thread" "$(col 6)"
    printf "  %-38s %9s samples/s\n" "PyTorch 1.13, 1 process x 2 threads" "$(col 7)"
    json+="\"$name\": {\"blas_kernels\": \"$KERNELS\", \"hidden\": \"$hidden\", \"latent\": $latent, \"batch\": $batch, \"steps\": $STEPS, \"rounds\": $REPS, "
    json+="\"gemm_bound\": $(col 4), \"vae_dist_1\": $(col 1), \"vae_dist_2\": $(col 2), \"vae_dist_1x2threads\": $(col 3), "
    json+="\"pytorch_1\": $(col 5), \"pytorch_ddp_2x1\": $(col 6), \"pytorch_1x2threads\": $(col 7), "
    json+="\"vs_pytorch\": $(col 8), \"vs_pytorch_range\": \"$(rng 8)\", \"speedup_2\": $(col 9), \"speedup_2_range\": \"$(rng 9)\", "
    json+="\"vs_ddp\": $(col 10), \"vs_ddp_range\": \"$(rng 10)\", \"threads2_vs_pytorch_threads2\": $(col 11), \"threads2_range\": \"$(rng 11)\", "
    json+="\"vs_bound\": $(col 12), \"vs_bound_range\": \"$(rng 12)\", \"speedup_2_from_parts\": $(col 13), \"speedup_2_from_parts_range\": \"$(rng 13)\"}, "
done
echo "${json%, }}" | sed 's/NaN/null/g' >bench/last_compare.json
echo "JSON: bench/last_compare.json"
