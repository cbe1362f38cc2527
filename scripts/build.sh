#!/usr/bin/env bash
# Configure and build vae_dist into build/ (Release, tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVAE_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
