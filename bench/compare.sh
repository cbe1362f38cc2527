#!/usr/bin/env bash
# vae_dist against the GEMM bound and against PyTorch, in one invocation.
# For each model (784-400-20 at global batch 128; 784-1024-1024-64 at 256),
# REPS interleaved rounds of: vae_dist on 1 rank and on 2 ranks, the GEMM
# bound (the step's sgemm calls alone, 1 thread), and when python3-torch is
# installed PyTorch 1.13 single-process (1 thread) and DDP (gloo, 2
# processes of 1 thread). Medians over the rounds, ratios, and the IWAE
# evaluation throughput. Prints a table and writes bench/last_compare.json.
#   bench/compare.sh [REPS=5] [STEPS=300]
# Needs build/ and data/fashion-mnist.h5 (scripts/run-main.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-5}; STEPS=${2:-300}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d /tmp/vae_compare_XXXXXX)
trap 'rm -rf "$W"' EXIT
TORCH=0
/usr/bin/python3 -c "import torch" 2>/dev/null && TORCH=1
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
vae_sps() { # NP HIDDEN LATENT BATCH: mean samples/s of the step events after the first
    mpirun -np "$1" build/vae_dist train --config configs/default.ini --resume none --set run.dir="$W/r" \
        --set model.hidden="$2" --set model.latent="$3" --set train.batch_size="$4" \
        --set train.max_steps="$STEPS" --set train.log_every=50 --set ckpt.every_seconds=0 >/dev/null 2>&1
    awk '/"event": "step"/ { if (++k == 1) next; p = index($0, "\"samples_per_s\": "); s += substr($0, p + 17) + 0; m++ }
        END { printf "%.1f\n", s / m }' "$W/r/metrics.jsonl"
    rm -rf "$W/r"
}
torch_sps() { # WORLD HIDDEN LATENT BATCH
    local port=$((29500 + RANDOM % 1000)) r
    if [ "$1" -eq 1 ]; then
        /usr/bin/python3 bench/pytorch_bench.py --hidden "$2" --latent "$3" --batch "$4" --steps "$STEPS"
    else
        for r in $(seq 1 $(($1 - 1))); do
            RANK=$r WORLD_SIZE=$1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port /usr/bin/python3 bench/pytorch_bench.py \
                --hidden "$2" --latent "$3" --batch "$4" --steps "$STEPS" >/dev/null &
        done
        RANK=0 WORLD_SIZE=$1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port /usr/bin/python3 bench/pytorch_bench.py \
            --hidden "$2" --latent "$3" --batch "$4" --steps "$STEPS"
        wait
    fi | sed -n 's/.*"samples_per_s": \([0-9.]*\).*/\1/p'
}
json="{"
for model in "small:400:20:128" "large:1024,1024:64:256"; do
    IFS=: read -r name hidden latent batch <<<"$model"
    for rep in $(seq "$REPS"); do
        vae_sps 1 "$hidden" "$latent" "$batch" >>"$W/$name.vae1"
        vae_sps 2 "$hidden" "$latent" "$batch" >>"$W/$name.vae2"
        build/bench/vae_gemm_bench --hidden "$hidden" --latent "$latent" --batch "$batch" --reps 100 |
            sed -n 's/.*"samples_per_s_bound": \([0-9.]*\).*/\1/p' >>"$W/$name.gemm"
        if [ $TORCH = 1 ]; then
            torch_sps 1 "$hidden" "$latent" "$batch" >>"$W/$name.pt1"
            torch_sps 2 "$hidden" "$latent" "$batch" >>"$W/$name.pt2"
        fi
    done
    v1=$(median <"$W/$name.vae1"); v2=$(median <"$W/$name.vae2"); gb=$(median <"$W/$name.gemm")
    p1=NaN; p2=NaN
    [ $TORCH = 1 ] && { p1=$(median <"$W/$name.pt1"); p2=$(median <"$W/$name.pt2"); }
    r() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else printf "NaN" }'; }
    echo "model 784-${hidden//,/-}-$latent, global batch $batch, $STEPS steps, median of $REPS rounds:"
    printf "  %-34s %10.0f samples/s\n" "GEMM bound (sgemm alone, 1 thread)" "$gb"
    printf "  %-34s %10.0f samples/s  = %s of the bound, %s x PyTorch 1 thread\n" "vae_dist 1 rank" "$v1" "$(r "$v1" "$gb")" "$(r "$v1" "$p1")"
    printf "  %-34s %10.0f samples/s  = %s x vae_dist 1 rank, %s x PyTorch DDP\n" "vae_dist 2 ranks" "$v2" "$(r "$v2" "$v1")" "$(r "$v2" "$p2")"
    printf "  %-34s %10s samples/s\n" "PyTorch 1.13, 1 process, 1 thread" "$p1"
    printf "  %-34s %10s samples/s  = %s x its single process\n" "PyTorch 1.13 DDP gloo, 2 processes" "$p2" "$(r "$p2" "$p1")"
    json+="\"$name\": {\"hidden\": \"$hidden\", \"latent\": $latent, \"batch\": $batch, \"gemm_bound\": $gb, \"vae_dist_1\": $v1, \"vae_dist_2\": $v2, \"pytorch_1\": ${p1/NaN/null}, \"pytorch_ddp_2\": ${p2/NaN/null}, \"vs_bound\": $(r "$v1" "$gb"), \"vs_pytorch\": $(r "$v1" "$p1" | sed 's/NaN/null/'), \"speedup_2\": $(r "$v2" "$v1")}, "
done
# IWAE evaluation throughput (samples x K per second) on 2 ranks, K = 1000, 1000 test images.
C=$(ls runs/fashion-mnist/ckpt/step-*.h5 2>/dev/null | tail -1 || true)
if [ -n "$C" ]; then
    s=$(mpirun -np 2 build/vae_dist eval --checkpoint "$C" --iw-samples 1000 --n 1000 2>/dev/null |
        sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p')
    echo "IWAE eval (784-400-20, K = 1000, 1000 images, 2 ranks): $s s = $(awk -v s="$s" 'BEGIN { printf "%.0f", 1e6 / s }') decoder passes/s"
    json+="\"iwae_k1000_n1000_2ranks_s\": $s, "
fi
echo "${json%, }}" >bench/last_compare.json
echo "JSON: bench/last_compare.json"
