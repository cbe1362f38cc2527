#!/usr/bin/env bash
# launch/scaling.sh end to end, small: strong and weak scaling on 1 and 2
# ranks of a tiny model on synthetic data, the microbenchmarks (with
# bench/corun_bench.c, the machine's own two-core figures), the model and
# its projection, the files it promises; and a run that fails stops the
# study loudly instead of writing a table.
. "$(dirname "$0")/e2e_lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(dirname "$VAE")
"$VAE" synth --out "$WORK/d.h5" --n-train 2048 --n-test 64 --dim 64 >/dev/null
cat >"$WORK/c.ini" <<INI
[data]
path = $WORK/d.h5
[model]
hidden = 32
latent = 4
[train]
seed = 1
INI
out=$(cd "$ROOT" && CONFIG="$WORK/c.ini" BATCH=64 LOCAL_BATCH=32 REPS=1 RANKS_PER_NODE=2 BUILD="$BUILD" \
      timeout -k 5 300 bash launch/scaling.sh 2 10 "$WORK/out" 2>&1); rc=$?
check "scaling.sh 2 10 exits 0 (exit $rc)" test "$rc" -eq 0 || echo "$out" | tail -15
rows=$(awk -F, 'NR > 1 && $6 > 0' "$WORK/out/scaling.csv" 2>/dev/null | cut -d, -f1,2,5 | tr '\n' ' ')
check "scaling.csv: strong 1, 2 at batch 64 and weak 1, 2 at 32 and 64, each with samples/s ($rows)" \
    test "$rows" = "strong,1,64 strong,2,64 weak,1,32 weak,2,64 "
check "scaling.csv: each point's parameter-gradient ms, within its compute ms, and whether they were sliced" \
    awk -F, 'NR > 1 { n++; if (!($17 > 0 && $17 <= $10 && $18 ~ /^(yes|no)$/)) bad++ } END { exit !(n == 4 && !bad) }' \
    "$WORK/out/scaling.csv"
check "one_rank.csv: 1-rank compute and parameter gradients at the per-rank batches 32 and 64" \
    bash -c "[ \"\$(awk -F, 'NR > 1 && \$3 > 0 && \$4 > 0 && \$4 <= \$3 { print \$1 }' '$WORK/out/one_rank.csv' | tr '\n' ' ')\" = '32 64 ' ]"
check "model.txt: fwd(b) and grads(b) from the 1-rank runs" grep -qE 'b:fwd:grads in s: 32:[0-9.e-]+:[0-9.e-]+ 64:' \
    "$WORK/out/model.txt"
check "node_exchange.txt: the node exchange measured on 2 ranks" \
    grep -qE '^node 2 [0-9]+ [0-9.e-]+$' "$WORK/out/node_exchange.txt"
check "model.txt: the node-mode model with a measured t_node" \
    grep -qE 't_node\(L\) in s, L:t_node: 2:[0-9.e-]+ ' "$WORK/out/model.txt"
check "check.csv: the projection against each measured point, with its error" \
    bash -c "[ \$(grep -cE '^(strong|weak),[12],[0-9.]+,[0-9.]+,[+-][0-9.]+,(no|yes)$' '$WORK/out/check.csv') -eq 4 ]"
check "projection.csv: weak scaling projected to 1024 ranks" grep -qE '^weak,1024,32768,[0-9.]+,' "$WORK/out/projection.csv"
if command -v gnuplot >/dev/null; then
    check "the three plots" test -s "$WORK/out/throughput.png" -a -s "$WORK/out/efficiency.png" -a -s "$WORK/out/phases.png"
fi
m=$(timeout 60 "$BUILD/bench/vae_corun_bench" --rounds 1 --ms 20 --params 4096)
check "vae_corun_bench: arithmetic and Adam, alone and two at once, each with a positive figure ($m)" \
    awk -v m="$m" 'BEGIN { n = split(m, f, /[,{}]/); for (i = 1; i <= n; i++)
        if (f[i] ~ /_(ms|speedup|spread)":/) { k++; split(f[i], v, ": "); if (!(v[2] > 0)) bad++ }
        exit !(k == 8 && !bad) }'
expect_error "vae_corun_bench with 0 rounds" "must be positive" "$BUILD/bench/vae_corun_bench" --rounds 0
check "the run directories are removed" bash -c "[ -z \"\$(ls -A '$WORK/out/runs')\" ]"
sed -i "s|^path = .*|path = $WORK/missing.h5|" "$WORK/c.ini"
expect_error "a run that fails stops the study with its log" "scaling.sh: this run failed" \
    bash -c "cd '$ROOT' && CONFIG='$WORK/c.ini' REPS=1 BUILD='$BUILD' timeout -k 5 120 bash launch/scaling.sh 2 10 '$WORK/bad'"
finish
