#!/usr/bin/env bash
# The step-time model's reduction term across an interconnect, on the
# simulated cluster (tests/cluster/cluster.sh; root, network namespaces):
# for each link profile, 4 nodes with one rank each,
#   1. fit α and β of  t(n) = 2α + n/β  to the allreduce benchmark on 2 nodes,
#   2. predict the ring allreduce on 4 nodes,  2(P−1)α + 2(P−1)/P · n/β,
#   3. measure it on 4 nodes, and compare at every size and at the gradient
#      size of the default model (784-400-20: 2.6 MB),
#   4. project the reduction time to P = 1024 (labelled projected).
# The nodes share this machine's cores: these are communication figures only
# (the benchmark times comm_allreduce_sum_f32 alone), not compute.
#   bench/cluster_scaling.sh [PROFILES="1gbe 10gbe"] [OUT=docs/scaling/cluster_profiles.md]
set -uo pipefail  # not -e: the cluster helpers test with commands that fail
cd "$(dirname "$0")/.."
PROFILES=${1:-1gbe 10gbe}
OUT=${2:-docs/scaling/cluster_profiles.md}
BENCH=$PWD/build/bench/vae_allreduce_bench
[ -x "$BENCH" ] || { echo "build first (scripts/build.sh): $BENCH missing"; exit 1; }
. tests/cluster/cluster.sh
cluster_possible || exit 77
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d)
trap 'cluster_down "$W/c" 2>/dev/null; rm -rf "$W"' EXIT
GRAD=$((4 * 652824)) # parameters of 784-400-20: 784·400+400 + 400·40+40 + 20·400+400 + 400·784+784
{
    echo "# Allreduce across simulated interconnects: model against measurement"
    echo
    echo "Made by \`bench/cluster_scaling.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores shared by the 4"
    echo "nodes; links shaped by \`tc tbf\`, no added latency: this kernel has no netem). Times are"
    echo "medians of 20 allreduces (\`vae_allreduce_bench\`), one rank per node. α (the 4 KiB time / 2) and"
    echo "β (the slope between 4 and 16 MiB) fitted on 2 nodes;"
    echo "4-node times predicted by the ring model, then measured. Gradient of the default model:"
    echo "$GRAD bytes."
} >"$OUT"
for profile in $PROFILES; do
    CLUSTER_SLOTS=1 cluster_up "$W/c" 4 "$profile" || { echo "cluster_up failed"; exit 1; }
    head -2 "$W/c/hosts" >"$W/hosts2"
    cluster_mpirun "$W/hosts2" -np 2 "$BENCH" 20 >"$W/ar2.txt" || { echo "benchmark on 2 nodes failed"; exit 1; }
    cluster_mpirun "$W/c/hosts" -np 4 "$BENCH" 20 >"$W/ar4.txt" || { echo "benchmark on 4 nodes failed"; exit 1; }
    cluster_down "$W/c"
    # α from the smallest message (its time is almost all latency: t = 2α),
    # 1/β from the slope between the two largest (almost all bandwidth).
    read -r alpha inv_beta <<<"$(awk '{ n[NR] = $2; t[NR] = $3 }
        END { s = (t[NR] - t[NR - 1]) / (n[NR] - n[NR - 1]); print t[1] / 2, s }' "$W/ar2.txt")"
    {
        echo
        echo "## $profile"
        echo
        awk -v a="$alpha" -v s="$inv_beta" 'BEGIN { printf "Fit on 2 nodes: α = %.1f µs, β = %.3f GB/s.\n\n", a * 1e6, 1 / s / 1e9 }'
        echo "| bytes | 2 nodes measured (ms) | 4 nodes predicted (ms) | 4 nodes measured (ms) | measured / predicted |"
        echo "| ---: | ---: | ---: | ---: | ---: |"
        paste "$W/ar2.txt" "$W/ar4.txt" | awk -v a="$alpha" -v s="$inv_beta" '{
            p = 6 * a + 1.5 * $2 * s
            printf "| %d | %.3f | %.3f | %.3f | %.2f |\n", $2, $3 * 1e3, p * 1e3, $6 * 1e3, $6 / p }'
        awk -v a="$alpha" -v s="$inv_beta" -v n="$GRAD" 'BEGIN {
            printf "\nAt the gradient size (%d bytes), predicted on 4 nodes: %.2f ms. ", n, (6 * a + 1.5 * n * s) * 1e3
            printf "Projected (not measured) at P = 1024, one rank per node: %.1f ms (%.1f ms latency, %.1f ms bandwidth).\n",
                (2046 * a + 2 * 1023 / 1024 * n * s) * 1e3, 2046 * a * 1e3, 2 * 1023 / 1024 * n * s * 1e3 }'
        # The 4-node time at the gradient size, interpolated between the sizes around it.
        awk -v a="$alpha" -v s="$inv_beta" -v n="$GRAD" '
            { if ($2 <= n) { lo = $2; tlo = $3 } else if (!hi) { hi = $2; thi = $3 } }
            END { m = tlo + (thi - tlo) * (n - lo) / (hi - lo); p = 6 * a + 1.5 * n * s
                  printf "Measured on 4 nodes at the gradient size (interpolated between %d and %d bytes): %.2f ms against %.2f ms predicted (%+.0f %%).\n", lo, hi, m * 1e3, p * 1e3, (m / p - 1) * 100 }' "$W/ar4.txt"
    } >>"$OUT"
done
cat "$OUT"
