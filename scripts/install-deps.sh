#!/usr/bin/env bash
# Install vae_dist's Debian dependencies. Idempotent, and quiet when
# everything is already there. Needs root (or sudo) for apt-get.
#   scripts/install-deps.sh          build, test and run dependencies (Slurm and munge for
#                                    the Slurm test, gnuplot for the plots, clang and its
#                                    libFuzzer runtime for tests/fuzz)
#   scripts/install-deps.sh --torch  also python3-torch, -numpy, -h5py (the PyTorch reference in
#                                    bench/, the interop test of python/vae_dist_torch.py)
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
      libopenblas-dev libcmocka-dev librandom123-dev libpng-dev zlib1g-dev
      dataset-fashion-mnist python3 bc procps gzip clang-format clang libclang-rt-14-dev patch iproute2 util-linux
      slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge gnuplot-nox)
[ "${1:-}" = "--torch" ] && pkgs+=(python3-torch python3-numpy python3-h5py)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
