#!/usr/bin/env bash
# Labelled plots of a run's metrics.jsonl with gnuplot: RUN_DIR/loss_labelled.png
# (train −ELBO per log interval and test −ELBO per epoch against the step).
#   launch/plot_metrics.sh RUN_DIR
set -euo pipefail
run=${1:?usage: plot_metrics.sh RUN_DIR}
m="$run/metrics.jsonl"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
sed -n 's/.*"event": "step", "step": \([0-9.e+]*\).*"neg_elbo": \([0-9.e+-]*\).*/\1 \2/p' "$m" >"$t/train"
sed -n 's/.*"event": "epoch".*"step": \([0-9.e+]*\).*"test_neg_elbo": \([0-9.e+-]*\).*/\1 \2/p' "$m" >"$t/test"
gnuplot <<GP
set terminal pngcairo size 900,500 noenhanced font ",10"
set output "$run/loss_labelled.png"
set xlabel "step"
set ylabel "-ELBO per sample (nats)"
set grid
set title "$run"
plot "$t/train" using 1:2 with lines lw 2 title "train (log interval mean)", \
     "$t/test" using 1:2 with linespoints pt 7 lw 2 title "test (end of epoch)"
GP
echo "wrote $run/loss_labelled.png"
