#!/usr/bin/env bash
# Fidelity against PyTorch 1.13 on Fashion-MNIST (Adam 1e-3, batch 128,
# 10 epochs), trained by vae_dist on 1 and on 2 ranks and by the PyTorch
# reference, each reporting the test −ELBO per sample after every epoch:
#   mlp   the PyTorch example VAE (784-400-20, relu, Bernoulli):
#         configs/default.ini against bench/pytorch_ref.py
#   conv  the conv VAE of configs/conv.ini against bench/pytorch_conv.py
#         (PyTorch with 2 threads: the figure compared is the loss, not speed)
# Prints the three curves and the final differences; exits 1 if vae_dist's
# final value is more than 1.0 nat from PyTorch's, 77 (skip) when
# python3-torch is missing.
#   bench/fidelity.sh [EPOCHS=10] [mlp|conv] [SEED=1]
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-10}; MODEL=${2:-mlp}; SEED=${3:-1}
case $MODEL in
mlp) CONFIG=configs/default.ini; TORCH=(bench/pytorch_ref.py --seed "$SEED") ;;
conv) CONFIG=configs/conv.ini; TORCH=(bench/pytorch_conv.py --threads 2 --seed "$SEED") ;;
*) echo "fidelity.sh: model is mlp or conv, found '$MODEL'" >&2; exit 2 ;;
esac
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "python3-torch missing: skipped"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=$(mktemp -d /tmp/vae_fid_XXXXXX)
for np in 1 2; do
    start=$(date +%s.%N)
    mpirun -np $np build/vae_dist train --config "$CONFIG" --resume none --set train.seed="$SEED" \
        --set train.epochs="$EPOCHS" --set run.dir="$OUT/np$np" --set ckpt.every_seconds=0 >/dev/null
    echo "vae_dist np=$np: $(echo "$(date +%s.%N) - $start" | bc | cut -c1-6) s"
done
start=$(date +%s.%N)
/usr/bin/python3 "${TORCH[@]}" --epochs "$EPOCHS" >"$OUT/torch.jsonl"
echo "pytorch: $(echo "$(date +%s.%N) - $start" | bc | cut -c1-6) s"
col() { grep '"event": "epoch"' "$1" | sed 's/.*"test_neg_elbo": \([0-9.]*\).*/\1/'; }
paste <(seq "$EPOCHS") <(col "$OUT/np1/metrics.jsonl") <(col "$OUT/np2/metrics.jsonl") \
    <(sed 's/.*"test_neg_elbo": \([0-9.]*\).*/\1/' "$OUT/torch.jsonl") |
    awk -v m="$MODEL" -v s="$SEED" 'BEGIN { print m " VAE, seed " s; print "epoch  vae_dist_np1  vae_dist_np2  pytorch" }
         { printf "%5d  %12.3f  %12.3f  %7.3f\n", $1, $2, $3, $4; a = $2; b = $3; t = $4 }
         END { printf "final difference to PyTorch: np1 %+.3f, np2 %+.3f nat\n", a - t, b - t;
               exit (a - t > 1.0 || b - t > 1.0) ? 1 : 0 }'
rc=$?
rm -rf "$OUT"
exit $rc
