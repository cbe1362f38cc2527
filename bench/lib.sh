# Shared by the benchmark scripts (sourced): the OpenBLAS kernels, statistics
# over rounds and one vae_dist training run's throughput, measured the same
# way everywhere.

# The OpenBLAS kernels, the same for everything a benchmark runs (vae_dist,
# PyTorch, the GEMM bound): BLAS_KERNELS, an OPENBLAS_CORETYPE name
# ("Haswell", "SkylakeX", "Cooperlake"), or unset for the ones vae_dist
# runs by itself: OpenBLAS's own choice for this CPU, or the CPU's widest
# where OpenBLAS's are narrower (model/linear.h; OpenBLAS 0.3.21 picks its
# SSE3 Prescott kernels on Intel's model 207, whose AVX-512 ones run the
# model's GEMMs 4.9x faster). An OPENBLAS_CORETYPE inherited from the
# environment does not count: one test machine's sets Haswell, whose AVX2
# kernels run the model's GEMMs 1.6x slower than AVX-512 ones
# (docs/performance.md). The choice is exported as OPENBLAS_CORETYPE, so that
# PyTorch's OpenBLAS runs the same kernels; KERNELS is the name the library
# reports; vae_run checks vae_dist's, the GEMM bound's is checked here, and
# bench/bench_threads.py checks PyTorch's (BENCH_BLAS_KERNELS).
if [ -n "${BLAS_KERNELS:-}" ]; then export OPENBLAS_CORETYPE=$BLAS_KERNELS; else unset OPENBLAS_CORETYPE; fi
KERNELS=$(build/vae_dist --version | sed -n 's/.*| OpenBLAS \([A-Za-z0-9]*\) kernels$/\1/p')
[ -n "$KERNELS" ] || { echo "bench: build/vae_dist --version did not name its OpenBLAS kernels" >&2; exit 1; }
export OPENBLAS_CORETYPE=$KERNELS
gemm_kernels=$(OPENBLAS_NUM_THREADS=1 build/bench/vae_gemm_bench --reps 1 | sed -n 's/.*"kernels": "\([^"]*\)".*/\1/p')
[ "$gemm_kernels" = "$KERNELS" ] ||
    { echo "bench: OPENBLAS_CORETYPE=$KERNELS gave the GEMM bound OpenBLAS '$gemm_kernels' kernels" >&2; exit 1; }
export BENCH_BLAS_KERNELS=$KERNELS

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else printf "NaN" }'; }

# vae_run DIR NP THREADS STEPS [train flags...]: train STEPS steps on NP ranks
# of THREADS OpenBLAS threads each (--bind-to none, so threads are not
# serialised on one core), check that the start event reports THREADS from
# openblas_get_num_threads() and the start line the kernels KERNELS, and print
# "samples/s compute_ms reduction_ms optim_ms data_ms spread_ms grads_ms":
# means over the step events (every 50 steps) after the first, which holds
# the warm-up; spread_ms is the slowest rank's compute time per step less the
# fastest's, what the others wait for; grads_ms the parameter gradients' part
# of compute_ms (t_grads).
vae_run() {
    local dir=$1 np=$2 threads=$3 steps=$4; shift 4
    rm -rf "$dir"
    OPENBLAS_NUM_THREADS=$threads mpirun -x OPENBLAS_NUM_THREADS --bind-to none -np "$np" build/vae_dist train \
        --resume none --set run.dir="$dir" --set train.max_steps="$steps" --set train.log_every=50 \
        --set ckpt.every_seconds=0 "$@" >"$dir.log" 2>&1
    grep -q "\"event\": \"start\".*\"blas_threads\": $threads[,}]" "$dir/metrics.jsonl" ||
        { echo "bench: vae_dist did not report $threads OpenBLAS threads per rank ($dir)" >&2; return 1; }
    grep -q "| OpenBLAS $KERNELS kernels" "$dir.log" ||
        { echo "bench: vae_dist did not report OpenBLAS $KERNELS kernels ($dir.log)" >&2; return 1; }
    awk '/"event": "step"/ { if (++k == 1) next;
        for (i = 1; i <= NF; i++) { gsub(/[",{}]/, "", $i) }
        for (i = 1; i < NF; i++) v[$i] += $(i + 1); m++ }
        END { printf "%.1f %.3f %.3f %.3f %.3f %.3f %.3f\n", v["samples_per_s:"] / m, 1e3 * v["t_compute:"] / m,
              1e3 * v["t_allreduce_wait:"] / m, 1e3 * v["t_optim:"] / m, 1e3 * v["t_data:"] / m,
              1e3 * (v["t_compute_max:"] - v["t_compute_min:"]) / m, 1e3 * v["t_grads:"] / m }' "$dir/metrics.jsonl"
    rm -rf "$dir" "$dir.log"
}

# grad_bytes DIR [train flags...]: the gradient's size in bytes for the
# configured model (the parameter count of a 1-step run).
grad_bytes() {
    local dir=$1; shift
    rm -rf "$dir"
    mpirun -np 1 build/vae_dist train --resume none --set run.dir="$dir" --set train.max_steps=1 \
        --set ckpt.every_seconds=0 "$@" >"$dir.log" 2>&1
    echo $(( $(sed -n 's/.*| \([0-9]*\) parameters |.*/\1/p' "$dir.log") * 4 ))
    rm -rf "$dir" "$dir.log"
}

# parts_round DIR STEPS HALF_BATCH GRAD_BYTES [train flags...]: the parts of
# a 2-rank step on this machine, measured now, each without the other rank.
# Prints "compute_ms exchange_ms alone_ms": the compute per step of a rank at
# half the global batch while the other core works too (two independent
# 1-rank runs at once, the slower one; nothing exchanged), the node exchange
# of the gradient (vae_allreduce_bench node: what a 2-rank step moves between
# the ranks, with nothing else running), and the compute per step of one
# 1-rank run at half the batch with the other core idle (alone_ms; what the
# busy core costs is compute_ms / alone_ms).
# from_parts NP1 PARTS: the 2-rank speedup those parts predict, from vae_run's
# line of the 1-rank run and parts_round's line: 1-rank step / (compute +
# (optimizer + data)/2 + exchange). An estimate, not a bound: the parts come
# from separate runs, each with its own noise.
parts_round() {
    local dir=$1 steps=$2 half=$3 bytes=$4 other; shift 4
    vae_run "$dir-a" 1 1 "$steps" "$@" --set train.batch_size="$half" >"$dir-a.txt" &
    other=$(vae_run "$dir-b" 1 1 "$steps" "$@" --set train.batch_size="$half")
    wait $!
    printf '%s\n%s\n' "$(cat "$dir-a.txt")" "$other" | sort -g -k2 | tail -1 | awk '{ printf "%s ", $2 }'
    rm -f "$dir-a.txt"
    mpirun -np 2 --bind-to none build/bench/vae_allreduce_bench 30 node "$bytes" 2>&1 |
        awk '/^node / { printf "%.4f ", $4 * 1e3 }'
    vae_run "$dir-c" 1 1 "$steps" "$@" --set train.batch_size="$half" | awk '{ print $2 }'
}
from_parts() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
        printf "%.3f", (x[2] + x[3] + x[4] + x[5]) / (y[1] + (x[4] + x[5]) / 2 + y[2]) }'
}
