#!/usr/bin/env bash
# The convolutional VAE against PyTorch and its GEMM bound, in one invocation.
# Two models (docs/conv.md): the Fashion-MNIST conv VAE (1x28x28, channels
# 32,64) and a synthetic 3x64x64 one with a third stage (32,64,128); global
# batch 128. REPS interleaved rounds of: vae_dist on 1 rank and on 2 ranks
# (1 OpenBLAS thread per rank), the GEMM bound (the step's sgemm calls alone,
# 1 thread), and PyTorch 1.13 with 1 thread (bench/pytorch_conv.py) when
# python3-torch is installed. Threads are pinned on both sides and checked
# through the libraries' own queries: vae_dist's start event reports
# openblas_get_num_threads(), pytorch_conv.py checks OpenBLAS and torch's
# intra-op pool. Medians over rounds, ratios, and the range of each ratio
# over the rounds; writes bench/last_conv.json. OpenBLAS's kernels are the
# same on both sides too (bench/lib.sh).
#   bench/conv.sh [REPS=5] [STEPS=60]
# Needs build/ and data/fashion-mnist.h5 (scripts/run-main.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPS=${1:-5}; STEPS=${2:-60}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
W=$(mktemp -d /tmp/vae_conv_XXXXXX)
trap 'rm -rf "$W"' EXIT
TORCH=0
/usr/bin/python3 -c "import torch" 2>/dev/null && TORCH=1
build/vae_dist synth --out "$W/rgb64.h5" --image 3,64,64 --n-train 2048 --n-test 256 >/dev/null
vae_sps() { # NP DATA CHANNELS: mean samples/s of the step events after the first; checks the BLAS threads
    mpirun -x OPENBLAS_NUM_THREADS -np "$1" build/vae_dist train --config configs/conv.ini --resume none \
        --set run.dir="$W/r" --set data.path="$2" --set model.channels="$3" --set train.max_steps="$STEPS" \
        --set train.log_every=10 --set ckpt.every_seconds=0 >/dev/null 2>&1
    grep -q '"event": "start".*"blas_threads": 1[,}]' "$W/r/metrics.jsonl" ||
        { echo "conv.sh: vae_dist did not run with 1 OpenBLAS thread per rank" >&2; exit 1; }
    awk '/"event": "step"/ { if (++k == 1) next; p = index($0, "\"samples_per_s\": "); s += substr($0, p + 17) + 0; m++ }
        END { printf "%.1f\n", s / m }' "$W/r/metrics.jsonl"
    rm -rf "$W/r"
}
json="{"
for model in "fashion:data/fashion-mnist.h5:1,28,28:32,64" "rgb64:$W/rgb64.h5:3,64,64:32,64,128"; do
    IFS=: read -r name data image channels <<<"$model"
    for rep in $(seq "$REPS"); do
        v1=$(vae_sps 1 "$data" "$channels"); v2=$(vae_sps 2 "$data" "$channels")
        echo "$v1" >>"$W/$name.vae1"; echo "$v2" >>"$W/$name.vae2"
        ratio "$v2" "$v1" >>"$W/$name.r2"; echo >>"$W/$name.r2"
        build/bench/vae_gemm_bench --image "$image" --set model.arch=conv --set model.hidden=none \
            --set model.channels="$channels" --batch 128 --reps 20 |
            sed -n 's/.*"samples_per_s_bound": \([0-9.]*\).*/\1/p' >>"$W/$name.gemm"
        if [ $TORCH = 1 ]; then
            p=$(/usr/bin/python3 bench/pytorch_conv.py --image "$image" --channels "$channels" --steps "$STEPS" \
                --threads 1 | sed -n 's/.*"samples_per_s": \([0-9.]*\).*/\1/p')
            echo "$p" >>"$W/$name.pt1"
            ratio "$v1" "$p" >>"$W/$name.rp"; echo >>"$W/$name.rp"
        fi
    done
    v1=$(median <"$W/$name.vae1"); v2=$(median <"$W/$name.vae2"); gb=$(median <"$W/$name.gemm")
    p1=NaN; rp=NaN; rpr=n/a
    [ $TORCH = 1 ] && { p1=$(median <"$W/$name.pt1"); rp=$(ratio "$v1" "$p1"); rpr=$(range <"$W/$name.rp"); }
    echo "conv VAE $image, channels $channels, batch 128, $STEPS steps, median of $REPS rounds (range of the ratio over rounds):"
    printf "  %-36s %9.0f samples/s\n" "GEMM bound (sgemm alone, 1 thread)" "$gb"
    printf "  %-36s %9.0f samples/s  = %s of the bound, %s x PyTorch 1 thread (%s)\n" "vae_dist 1 rank x 1 thread" \
        "$v1" "$(ratio "$v1" "$gb")" "$rp" "$rpr"
    printf "  %-36s %9.0f samples/s  = %s x vae_dist 1 rank (%s)\n" "vae_dist 2 ranks x 1 thread" "$v2" \
        "$(ratio "$v2" "$v1")" "$(range <"$W/$name.r2")"
    printf "  %-36s %9s samples/s\n" "PyTorch 1.13, 1 thread" "$p1"
    json+="\"$name\": {\"image\": \"$image\", \"channels\": \"$channels\", \"batch\": 128, \"steps\": $STEPS, \"rounds\": $REPS, \"gemm_bound\": $gb, \"vae_dist_1\": $v1, \"vae_dist_2\": $v2, \"pytorch_1\": ${p1/NaN/null}, \"vs_bound\": $(ratio "$v1" "$gb"), \"vs_pytorch\": ${rp/NaN/null}, \"vs_pytorch_range\": \"$rpr\", \"speedup_2\": $(ratio "$v2" "$v1"), \"speedup_2_range\": \"$(range <"$W/$name.r2")\"}, "
done
echo "${json%, }}" >bench/last_conv.json
echo "JSON: bench/last_conv.json"
