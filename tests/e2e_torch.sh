#!/usr/bin/env bash
# The PyTorch interop module (python/vae_dist_torch.py) against the real
# binary: h5py dataset -> vae_dist train -> PyTorch encode/recon compared with
# vae_dist's (tests/torch_interop.py). Skipped (77) without PyTorch and h5py.
. "$(dirname "$0")/e2e_lib.sh"
# Debian's packages are for the system python3, which another on PATH may hide.
PY=""
for p in python3 /usr/bin/python3; do
    "$p" -c "import torch, h5py, numpy" 2>/dev/null && { PY=$p; break; }
done
if [ -z "$PY" ]; then
    echo "skipped: python3-torch, python3-h5py or python3-numpy not installed"
    exit 77
fi
OPENBLAS_NUM_THREADS=1 "$PY" "$(dirname "$0")/torch_interop.py" "$VAE" "$WORK"
