#!/usr/bin/env bash
# Fidelity against PyTorch 1.13: the PyTorch example VAE (784-400-20, relu,
# Bernoulli, Adam 1e-3, batch 128, 10 epochs) on Fashion-MNIST, trained by
# vae_dist on 1 and on 2 ranks and by bench/pytorch_ref.py, each reporting the
# test −ELBO per sample after every epoch. Prints the three curves and the
# final differences; exits 1 if vae_dist's final value is more than 1.0 nat
# from PyTorch's, 77 (skip) when python3-torch is missing.
#   bench/fidelity.sh [EPOCHS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-10}
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "python3-torch missing: skipped"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=$(mktemp -d /tmp/vae_fid_XXXXXX)
for np in 1 2; do
    start=$(date +%s.%N)
    mpirun -np $np build/vae_dist train --config configs/default.ini --resume none \
        --set train.epochs="$EPOCHS" --set run.dir="$OUT/np$np" --set ckpt.every_seconds=0 >/dev/null
    echo "vae_dist np=$np: $(echo "$(date +%s.%N) - $start" | bc | cut -c1-6) s"
done
start=$(date +%s.%N)
/usr/bin/python3 bench/pytorch_ref.py --epochs "$EPOCHS" >"$OUT/torch.jsonl"
echo "pytorch 1 thread: $(echo "$(date +%s.%N) - $start" | bc | cut -c1-6) s"
col() { grep '"event": "epoch"' "$1" | sed 's/.*"test_neg_elbo": \([0-9.]*\).*/\1/'; }
paste <(seq "$EPOCHS") <(col "$OUT/np1/metrics.jsonl") <(col "$OUT/np2/metrics.jsonl") \
    <(sed 's/.*"test_neg_elbo": \([0-9.]*\).*/\1/' "$OUT/torch.jsonl") |
    awk 'BEGIN { print "epoch  vae_dist_np1  vae_dist_np2  pytorch" }
         { printf "%5d  %12.3f  %12.3f  %7.3f\n", $1, $2, $3, $4; a = $2; b = $3; t = $4 }
         END { printf "final difference to PyTorch: np1 %+.3f, np2 %+.3f nat\n", a - t, b - t;
               exit (a - t > 1.0 || b - t > 1.0) ? 1 : 0 }'
rc=$?
rm -rf "$OUT"
exit $rc
