#!/usr/bin/env bash
# The labelled loss picture of a run, from its metrics.jsonl, with gnuplot:
# RUN_DIR/loss.png (train −ELBO per log interval and test −ELBO per epoch
# against the step, over every segment of a resumed run; a step logged twice,
# after a rollback, counts once, with its latest value). `vae_dist train`
# runs this at the end of a run (as plot_metrics.sh beside the binary).
#   launch/plot_metrics.sh RUN_DIR
set -euo pipefail
run=${1:?usage: plot_metrics.sh RUN_DIR}
m="$run/metrics.jsonl"
command -v gnuplot >/dev/null || { echo "plot_metrics.sh: gnuplot not found, no $run/loss.png" >&2; exit 1; }
[ -r "$m" ] || { echo "plot_metrics.sh: $m not found" >&2; exit 1; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
last_per_step() { awk '{ v[$1] = $2 } END { for (s in v) print s, v[s] }' | sort -g; }
sed -n 's/.*"event": "step",.* "step": \([0-9.e+]*\).*"neg_elbo": \([0-9.e+-]*\).*/\1 \2/p' "$m" | last_per_step >"$t/train"
sed -n 's/.*"event": "epoch".*"step": \([0-9.e+]*\).*"test_neg_elbo": \([0-9.e+-]*\).*/\1 \2/p' "$m" | last_per_step >"$t/test"
if [ ! -s "$t/train" ]; then
    echo "plot_metrics.sh: $m has no step events yet (a run logs every train.log_every steps); no picture" >&2
    exit 1
fi
plot="\"$t/train\" using 1:2 with linespoints pt 7 ps 0.4 lw 2 title \"train (log interval mean)\""
[ -s "$t/test" ] && plot+=", \"$t/test\" using 1:2 with linespoints pt 7 lw 2 title \"test (end of epoch)\""
# A run of one log interval is one point: gnuplot widens the empty ranges
# itself, and its warning about it is noise.
gnuplot 2>"$t/err" <<GP
set terminal pngcairo size 900,500 noenhanced font ",10"
set output "$run/loss.png"
set xlabel "step"
set ylabel "-ELBO per sample (nats)"
set grid
set key top right
set title "$run"
plot $plot
GP
grep -v '^Warning: empty [xy] range' "$t/err" >&2 || true
echo "wrote $run/loss.png"
