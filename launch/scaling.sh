#!/usr/bin/env bash
# Scaling study: strong scaling (fixed global batch) and weak scaling (fixed
# per-rank batch) for P = 1, 2, 4, ... MAX_P ranks, per-phase times
# (min/mean/max over ranks), a measured model of step time projected to
# 1024 ranks, CSV files and PNG plots.
#
#   launch/scaling.sh [MAX_P=nproc] [STEPS=300] [OUTDIR=docs/scaling]
#   env: CONFIG (default configs/default.ini), BATCH (strong, 128), LOCAL_BATCH (weak, 64),
#        REPS (runs per point, median, default 3), RUNS (run directories, default
#        OUTDIR/runs: every rank must see them, so on a cluster a shared filesystem),
#        MPIRUN_ARGS (more mpirun options, e.g. --hostfile FILE), BUILD (the build
#        directory, default build)
# A run that fails stops the study with its log's last lines (logs in RUNS).
#
# Model (fitted on the 1-rank run and microbenchmarks only, so the measured
# points at P >= 2 test it). With the default reduction (comm.shared_memory:
# L ranks per node share a window, N = P/L nodes, each rank steps 1/L of
# the optimizer):
#   step(P, b) = fwd(b) + grads(L, b) + b·c_data + t_optim/L + t_node(L) + allreduce(N, bytes/L)
#   t_node(L): the node exchange (reduce the own slice, norm, gather, and the
#              next forward's read of the other slices) measured
#              on L ranks of one node (vae_allreduce_bench node)
# With the reduction set to one allreduce (comm.shared_memory = false):
#   step(P, b) = fwd(b) + grads(1, b) + b·c_data + t_optim + allreduce(P, bytes)
#   allreduce(P, n) = 2(P−1)·α + 2(P−1)/P · n/β      (ring; α, β fitted on 2 ranks,
#                                                     one per node where there are several)
# L = RANKS_PER_NODE (default: Slurm's tasks per node, else the cores here).
# Compute comes from 1-rank runs at every per-rank batch b the study uses
# (B/P, and LOCAL_BATCH; one_rank.csv), linear between them and past them:
# fwd(b), t_compute less t_grads (forward and input gradients), and grads(b),
# t_grads (the parameter gradients); fewer rows per GEMM cost more per row.
# Where the node's ranks compute sliced parameter gradients (the runs' start
# lines say; past the largest P measured, as there), each computes 1/L of
# them over the node's L·b rows: grads(L, b) = grads(L·b)/L, else grads(b).
# Runs with P above the core count
# share cores ("oversubscribed" in the CSV and the plots): they measure the
# code's correctness under contention, not its speed.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_P=${1:-$(nproc)}; STEPS=${2:-300}; OUTDIR=${3:-docs/scaling}
CONFIG=${CONFIG:-configs/default.ini}; BATCH=${BATCH:-128}; LOCAL_BATCH=${LOCAL_BATCH:-64}; REPS=${REPS:-3}
BUILD=${BUILD:-build}
CORES=$(nproc)
RPN=${RANKS_PER_NODE:-${SLURM_NTASKS_PER_NODE:-$CORES}}; RPN=${RPN%%(*}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$OUTDIR"
[ "$STEPS" -ge 10 ] || { echo "scaling.sh: STEPS = $STEPS: at least 10 steps are needed (the first log interval is warm-up)"; exit 2; }
LOG_EVERY=$((STEPS / 5))
mkdir -p "${RUNS:=$OUTDIR/runs}"
W=$(mktemp -d "$RUNS/scaling_XXXXXX")
W=$(cd "$W" && pwd)
trap 'rm -rf "$W"' EXIT
# Allreduce α and β between nodes when the allocation has several: one rank per node.
AR_MAP=""
[ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ] && AR_MAP="--map-by ppr:1:node"
# mpirun NP ARGS...: vae_dist, its log kept; a failure ends the study, loudly.
run() {
    local np=$1 log=$2
    shift 2
    # shellcheck disable=SC2086  # MPIRUN_ARGS is a list of words
    if ! mpirun ${MPIRUN_ARGS:-} -np "$np" "$@" >"$log" 2>&1; then
        echo "scaling.sh: this run failed (log $log):"; echo "  mpirun -np $np $*"; tail -15 "$log"
        trap - EXIT
        exit 1
    fi
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# The run (a line of run_stats) with the median throughput, which stands for its point.
median_row() {
    local med
    med=$(awk '{ print $1 }' "$1" | median)
    awk -v m="$med" '{ d = ($1 > m) ? $1 - m : m - $1; if (!n++ || d < best) { best = d; r = $0 } } END { print r }' "$1"
}

# Mean over a run's step events after the first: samples/s and phase stats (ms).
run_stats() {
    awk '/"event": "step"/ { if (++k == 1) next; line = $0; m++
        n = split("samples_per_s t_data t_compute t_compute_min t_compute_max t_allreduce_wait t_allreduce_wait_min t_allreduce_wait_max t_optim t_grads", keys, " ")
        for (i = 1; i <= n; i++) { key = "\"" keys[i] "\": "; p = index(line, key)
            v[i] += substr(line, p + length(key)) + 0 } }
        END { if (!m) { print "no step events after the first in " FILENAME > "/dev/stderr"; exit 1 }
              printf "%.1f", v[1] / m; for (i = 2; i <= 10; i++) printf " %.4f", 1e3 * v[i] / m; printf "\n" }' "$1"
}

echo "mode,ranks,cores,oversubscribed,global_batch,samples_per_s,speedup,efficiency,data_ms,compute_ms_mean,compute_ms_min,compute_ms_max,allreduce_ms_mean,allreduce_ms_min,allreduce_ms_max,optim_ms,grads_ms,sliced" >"$OUTDIR/scaling.csv"
for mode in strong weak; do
    base=""
    for ((p = 1; p <= MAX_P; p *= 2)); do
        gb=$([ $mode = strong ] && echo "$BATCH" || echo $((LOCAL_BATCH * p)))
        for rep in $(seq "$REPS"); do
            run $p "$W/$mode-$p-$rep.log" "$BUILD/vae_dist" train --config "$CONFIG" --resume none \
                --set run.dir="$W/$mode-$p-$rep" --set train.batch_size="$gb" --set train.max_steps="$STEPS" \
                --set train.log_every=$LOG_EVERY --set ckpt.every_seconds=0
            run_stats "$W/$mode-$p-$rep/metrics.jsonl" >>"$W/$mode-$p.txt"
        done
        # Did the node's ranks compute sliced parameter gradients (the start line's reduction)?
        sliced=$(grep -q "sliced parameter gradients" "$W/$mode-$p-1.log" && echo yes || echo no)
        read -r sps data cm cmin cmax am amin amax opt grads <<<"$(median_row "$W/$mode-$p.txt")"
        [ -z "$base" ] && base=$sps
        speed=$(awk -v a="$sps" -v b="$base" 'BEGIN { print a / b }')
        eff=$(awk -v a="$speed" -v p="$p" 'BEGIN { print a / p }')
        echo "$mode,$p,$CORES,$([ $p -gt "$CORES" ] && echo yes || echo no),$gb,$sps,$(printf %.4f "$speed"),$(printf %.4f "$eff"),$data,$cm,$cmin,$cmax,$am,$amin,$amax,$opt,$grads,$sliced" >>"$OUTDIR/scaling.csv"
        echo "measured $mode P=$p batch=$gb: $sps samples/s (speedup $(printf %.3f "$speed"))"
    done
done

# 1 rank at every per-rank batch the strong runs use (B/P), for the model's
# compute term: fewer rows per GEMM cost more per row, and a line through two
# batches does not extrapolate to a few rows.
echo "batch,samples_per_s,compute_ms,grads_ms" >"$OUTDIR/one_rank.csv"
for b in $( { for ((p = 1; p <= MAX_P && BATCH / p >= 1; p *= 2)); do echo $((BATCH / p)); done
              echo "$LOCAL_BATCH"; } | sort -un); do
    case $b in
        "$BATCH") f="$W/strong-1.txt" ;;
        "$LOCAL_BATCH") f="$W/weak-1.txt" ;;
        *)  f="$W/one-$b.txt"
            for rep in $(seq "$REPS"); do
                run 1 "$W/one-$b-$rep.log" "$BUILD/vae_dist" train --config "$CONFIG" --resume none \
                    --set run.dir="$W/one-$b-$rep" --set train.batch_size="$b" --set train.max_steps="$STEPS" \
                    --set train.log_every=$LOG_EVERY --set ckpt.every_seconds=0
                run_stats "$W/one-$b-$rep/metrics.jsonl" >>"$f"
            done ;;
    esac
    median_row "$f" | awk -v b="$b" '{ printf "%d,%s,%s,%s\n", b, $1, $3, $10 }' >>"$OUTDIR/one_rank.csv"
done

# Allreduce α (latency) and β (bandwidth) from the microbenchmark on 2 ranks
# (on 2 nodes when the allocation has several).
if [ "$CORES" -ge 2 ] || [ -n "$AR_MAP" ]; then
    # shellcheck disable=SC2086
    run 2 "$W/ar.log" $AR_MAP "$BUILD/bench/vae_allreduce_bench" 30
    grep -E '^[0-9]+ [0-9]+ [0-9.e+-]+$' "$W/ar.log" >"$W/ar.txt"
else
    echo "2 0.0000001" >"$W/ar.txt"
fi
cp "$W/ar.txt" "$OUTDIR/allreduce_2ranks.txt"
# Gradient bytes of the configured model, from a 1-step run's parameter count.
run 1 "$W/count.log" "$BUILD/vae_dist" train --config "$CONFIG" --resume none --set run.dir="$W/count" \
    --set train.max_steps=1 --set ckpt.every_seconds=0
sed -n 's/.*| \([0-9]*\) parameters |.*/\1/p' "$W/count.log" >"$W/nparams"
grad_bytes=$(( $(cat "$W/nparams") * 4 ))
# The default reduction, as the runs above resolved the config?
node_mode=0
grep -q '^shared_memory = true' "$W/count/config.ini" && grep -q '^overlap = false' "$W/count/config.ini" &&
    grep -q '^reproducible = false' "$W/count/config.ini" && node_mode=1
# Its node exchange on L = 2, 4, ... ranks of one node, up to the ranks per node (and the cores here).
: >"$W/node.txt"
for ((l = 2; node_mode && l <= RPN && l <= CORES; l *= 2)); do
    run $l "$W/node-$l.log" "$BUILD/bench/vae_allreduce_bench" 30 node "$grad_bytes"
    grep -E '^node ' "$W/node-$l.log" >>"$W/node.txt"
done
cp "$W/node.txt" "$OUTDIR/node_exchange.txt"
# On 2 ranks a ring allreduce costs 2α + n/β: α from the smallest message, β at
# the gradient's size, interpolating between the two measured sizes around it
# (bandwidth depends on size: caches), so the model is right where it is used.
read -r alpha inv_beta <<<"$(awk -v n="$grad_bytes" '{ x[NR] = $2; y[NR] = $3 }
    END { a = y[1] / 2; t = y[NR]
          for (i = 1; i < NR; i++) if (n >= x[i] && n <= x[i + 1]) t = y[i] + (y[i + 1] - y[i]) * (n - x[i]) / (x[i + 1] - x[i])
          if (n < x[1]) t = y[1]
          printf "%.9g %.9g\n", a, (t - 2 * a) / n }' "$W/ar.txt")"
# Per-sample data and the optimizer from the 1-rank strong run; compute from
# the 1-rank runs at each batch (one_rank.csv, "batch:fwd:grads" in seconds).
read -r d1 o1 <<<"$(awk -F, -v B="$BATCH" '$2 == 1 && $1 == "strong" { printf "%.9g %.9g\n", $9 / 1e3 / B, $16 / 1e3 }' \
    "$OUTDIR/scaling.csv")"
one=$(awk -F, 'NR > 1 { printf "%d:%.9g:%.9g ", $1, ($3 - $4) / 1e3, $4 / 1e3 }' "$OUTDIR/one_rank.csv")
# t_node(L) as measured ("L:seconds ..."); the model takes the largest L measured up to its own.
tnode=$(awk '{ printf "%s:%s ", $2, $4 }' "$W/node.txt")
if [ "$node_mode" = 1 ] && [ -n "$(cat "$W/node.txt")" ]; then
    formula="step(P, b) = fwd(b) + grads(L, b) + b*c_data + t_optim/L + t_node(L) + 2(N-1)*alpha + 2(N-1)/N * (bytes/L)/beta, L = min(P, $RPN) ranks per node, N = P/L nodes
grads(L, b) = grads(L*b)/L where the node's ranks compute sliced parameter gradients (each 1/L of them over the node's L*b rows), else grads(b)
t_node(L) in s, L:t_node: $tnode(node_exchange.txt; for an L not measured, the largest measured below it)"
else
    node_mode=0
    formula="step(P, b) = fwd(b) + grads(b) + b*c_data + t_optim + 2(P-1)*alpha + 2(P-1)/P * bytes/beta"
fi
cat >"$OUTDIR/model.txt" <<M
$formula
fwd(b) and grads(b): t_compute less t_grads, and t_grads, of 1-rank runs at batch b (one_rank.csv), linear between the batches measured and past them; b:fwd:grads in s: $one
c_data = $d1 s/sample, t_optim = $o1 s (the 1-rank strong run)
sliced parameter gradients at P (as the runs' start lines said; beyond, the largest P measured): $(awk -F, 'NR > 1 { printf "%s %s:%s ", $1, $2, $18 }' "$OUTDIR/scaling.csv")
alpha = $alpha s (half the 4 KiB allreduce on 2 ranks), 1/beta = $inv_beta s/byte (beta = $(awk -v b="$inv_beta" 'BEGIN { printf "%.2f", 1 / b / 1e9 }') GB/s at the gradient size), from the 2-rank allreduce benchmark (allreduce_2ranks.txt)
bytes = $grad_bytes (gradient of the configured model)
M
echo "mode,ranks,global_batch,samples_per_s_projected,speedup_projected" >"$OUTDIR/projection.csv"
for mode in strong weak; do
    sl=$(awk -F, -v mode=$mode '$1 == mode { printf "%s:%d ", $2, $18 == "yes" }' "$OUTDIR/scaling.csv")
    for p in 1 2 4 8 16 32 64 128 256 512 1024; do
        [ $mode = strong ] && [ "$p" -gt "$BATCH" ] && continue
        awk -v mode=$mode -v p="$p" -v B="$BATCH" -v b0="$LOCAL_BATCH" -v one="$one" \
            -v d="$d1" -v o="$o1" -v a="$alpha" -v ib="$inv_beta" -v n="$grad_bytes" -v node="$node_mode" -v rpn="$RPN" \
            -v tn="$tnode" -v sl="$sl" '
            function ring(P, bytes) { return P > 1 ? 2 * (P - 1) * a + 2 * (P - 1) / P * bytes * ib : 0 }
            # column c (2: fwd, 3: grads) of one_rank at batch x: linear between measured batches, and past them
            function at(x, c,   i, y) {
                if (nb == 1) return t[1, c] * x / t[1, 1]
                for (i = 1; i < nb - 1 && x > t[i + 1, 1]; i++) ;
                y = t[i, c] + (t[i + 1, c] - t[i, c]) * (x - t[i, 1]) / (t[i + 1, 1] - t[i, 1])
                return y > 0 ? y : 0 }
            function compute(P, b, L,   q) {
                for (q = P; q > 1 && !(q in sliced); q--) ;
                return at(b, 2) + (sliced[q] ? at(L * b, 3) / L : at(b, 3)) }
            function step(P, b,   L, N, l) {
                if (!node || P == 1) return compute(1, b, 1) + b * d + o + ring(P, n)
                L = P < rpn ? P : rpn; N = P / L
                for (l = L; l > 2 && !(l in tnode); l--) ;
                return compute(P, b, L) + b * d + o / L + tnode[l] + ring(N, n / L) }
            BEGIN { m = split(tn, kv, " "); for (i = 1; i <= m; i++) { split(kv[i], x, ":"); tnode[x[1]] = x[2] }
                    m = split(sl, kv, " "); for (i = 1; i <= m; i++) { split(kv[i], x, ":"); sliced[x[1]] = x[2] }
                    nb = split(one, kv, " "); for (i = 1; i <= nb; i++) { split(kv[i], x, ":"); t[i, 1] = x[1]; t[i, 2] = x[2]; t[i, 3] = x[3] }
                    if (mode == "strong") { s = B / step(p, B / p); s1 = B / step(1, B) }
                    else { s = p * b0 / step(p, b0); s1 = b0 / step(1, b0) }
                    printf "%s,%d,%d,%.1f,%.4f\n", mode, p, (mode == "strong") ? B : p * b0, s, s / s1 }' \
            >>"$OUTDIR/projection.csv"
    done
done
echo "mode,ranks,measured_samples_per_s,projected_samples_per_s,error_percent,oversubscribed" >"$OUTDIR/check.csv"
awk -F, 'NR == FNR { if (FNR > 1) proj[$1 "," $2] = $4; next }
    FNR > 1 { k = $1 "," $2; if (k in proj) printf "%s,%s,%.1f,%.1f,%+.1f,%s\n", $1, $2, $6, proj[k], 100 * (proj[k] - $6) / $6, $4 }' \
    "$OUTDIR/projection.csv" "$OUTDIR/scaling.csv" >>"$OUTDIR/check.csv"

if command -v gnuplot >/dev/null; then
    awk -F, '$1 == "strong"' "$OUTDIR/scaling.csv" >"$W/strong.csv"
    gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 900,560 noenhanced font ",10"
set logscale x 2
set key top left
set grid
set xlabel "ranks P"
set output "$OUTDIR/throughput.png"
set ylabel "samples/s"
set logscale y 10
set title "vae_dist throughput: measured on $CORES cores (hollow: oversubscribed), projected by the step-time model"
plot "$OUTDIR/projection.csv" using (strcol(1) eq "strong" ? \$2 : NaN):4 with lines lw 2 lc rgb "#1f77b4" title "strong (B=$BATCH), projected", \
     "$OUTDIR/projection.csv" using (strcol(1) eq "weak" ? \$2 : NaN):4 with lines lw 2 lc rgb "#d62728" title "weak (b=$LOCAL_BATCH/rank), projected", \
     "$OUTDIR/scaling.csv" using (strcol(1) eq "strong" && strcol(4) eq "no" ? \$2 : NaN):6 with points pt 7 ps 1.5 lc rgb "#1f77b4" title "strong, measured", \
     "$OUTDIR/scaling.csv" using (strcol(1) eq "weak" && strcol(4) eq "no" ? \$2 : NaN):6 with points pt 7 ps 1.5 lc rgb "#d62728" title "weak, measured", \
     "$OUTDIR/scaling.csv" using (strcol(1) eq "strong" && strcol(4) eq "yes" ? \$2 : NaN):6 with points pt 6 ps 1.5 lc rgb "#1f77b4" title "strong, measured, oversubscribed", \
     "$OUTDIR/scaling.csv" using (strcol(1) eq "weak" && strcol(4) eq "yes" ? \$2 : NaN):6 with points pt 6 ps 1.5 lc rgb "#d62728" title "weak, measured, oversubscribed"
set output "$OUTDIR/efficiency.png"
unset logscale y
set yrange [0:1.1]
set ylabel "parallel efficiency (speedup / P)"
set title "vae_dist parallel efficiency: measured (points) and projected (lines)"
plot "$OUTDIR/projection.csv" using (strcol(1) eq "strong" ? \$2 : NaN):(\$5/\$2) with lines lw 2 lc rgb "#1f77b4" title "strong, projected", \
     "$OUTDIR/projection.csv" using (strcol(1) eq "weak" ? \$2 : NaN):(\$5/\$2) with lines lw 2 lc rgb "#d62728" title "weak, projected", \
     "$OUTDIR/scaling.csv" using (strcol(1) eq "strong" ? \$2 : NaN):8 with points pt 7 ps 1.5 lc rgb "#1f77b4" title "strong, measured", \
     "$OUTDIR/scaling.csv" using (strcol(1) eq "weak" ? \$2 : NaN):8 with points pt 7 ps 1.5 lc rgb "#d62728" title "weak, measured"
set output "$OUTDIR/phases.png"
unset logscale x
set yrange [0:*]
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.7
set ylabel "ms per step (mean over ranks)"
set xlabel "ranks P (strong scaling, B=$BATCH)"
set title "where a step goes (mean over ranks; min and max per rank are in scaling.csv)"
set key top right
plot "$W/strong.csv" using 9:xtic(sprintf("%d%s", \$2, strcol(4) eq "yes" ? " (oversubscribed)" : "")) title "data", \
     "" using 10 title "compute (fwd+bwd)", \
     "" using 13 title "allreduce + wait", \
     "" using 16 title "optimizer"
GP
fi
echo; cat "$OUTDIR/model.txt"; echo; column -s, -t "$OUTDIR/check.csv"
echo "wrote $OUTDIR/scaling.csv projection.csv check.csv model.txt and the PNG plots"
