# Shared by the benchmark scripts (sourced): statistics over rounds and one
# vae_dist training run's throughput, measured the same way everywhere.

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else printf "NaN" }'; }

# vae_run DIR NP THREADS STEPS [train flags...]: train STEPS steps on NP ranks
# of THREADS OpenBLAS threads each (--bind-to none, so threads are not
# serialised on one core), check that the start event reports THREADS from
# openblas_get_num_threads(), and print "samples/s compute_ms reduction_ms
# optim_ms data_ms spread_ms": means over the step events (every 50 steps)
# after the first, which holds the warm-up; spread_ms is the slowest rank's
# compute time per step less the fastest's, what the others wait for.
vae_run() {
    local dir=$1 np=$2 threads=$3 steps=$4; shift 4
    rm -rf "$dir"
    OPENBLAS_NUM_THREADS=$threads mpirun -x OPENBLAS_NUM_THREADS --bind-to none -np "$np" build/vae_dist train \
        --resume none --set run.dir="$dir" --set train.max_steps="$steps" --set train.log_every=50 \
        --set ckpt.every_seconds=0 "$@" >/dev/null 2>&1
    grep -q "\"event\": \"start\".*\"blas_threads\": $threads[,}]" "$dir/metrics.jsonl" ||
        { echo "bench: vae_dist did not report $threads OpenBLAS threads per rank ($dir)" >&2; return 1; }
    awk '/"event": "step"/ { if (++k == 1) next;
        for (i = 1; i <= NF; i++) { gsub(/[",{}]/, "", $i) }
        for (i = 1; i < NF; i++) v[$i] += $(i + 1); m++ }
        END { printf "%.1f %.3f %.3f %.3f %.3f %.3f\n", v["samples_per_s:"] / m, 1e3 * v["t_compute:"] / m,
              1e3 * v["t_allreduce_wait:"] / m, 1e3 * v["t_optim:"] / m, 1e3 * v["t_data:"] / m,
              1e3 * (v["t_compute_max:"] - v["t_compute_min:"]) / m }' "$dir/metrics.jsonl"
    rm -rf "$dir"
}
