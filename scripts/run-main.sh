#!/usr/bin/env bash
# The main job: install, build, prepare Fashion-MNIST and train the PyTorch
# example VAE on 2 ranks with configs/default.ini. Extra arguments go to
# `vae_dist train` (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
D=/usr/share/datasets/fashion-mnist
mkdir -p data
[ -s data/fashion-mnist.h5 ] || ./build/vae_dist prep \
    --train-images $D/train-images-idx3-ubyte.gz --train-labels $D/train-labels-idx1-ubyte.gz \
    --test-images $D/t10k-images-idx3-ubyte.gz --test-labels $D/t10k-labels-idx1-ubyte.gz \
    --out data/fashion-mnist.h5
exec mpirun -np 2 ./build/vae_dist train --config configs/default.ini "$@"
