#!/usr/bin/env bash
# Training throughput of this tree's build/vae_dist against the vae_dist of
# another commit, in one invocation: REV is built in a temporary worktree,
# then both binaries run each configuration REPS times, interleaved (so the
# machine's noise hits both alike). A run's figure is the mean samples/s of
# its step events after the first; the table gives medians and new/old.
#   bench/vs_commit.sh REV [REPS=5] [STEPS=400]
# Needs build/vae_dist and data/fashion-mnist.h5 (scripts/run-main.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/vs_commit.sh REV [REPS] [STEPS]}; REPS=${2:-5}; STEPS=${3:-400}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
OUT=$(mktemp -d /tmp/vae_vs_XXXXXX)
trap 'git worktree remove --force "$OUT/src" >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT
git worktree add --detach "$OUT/src" "$REV" >/dev/null 2>&1
cmake -S "$OUT/src" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DVAE_BUILD_TESTS=OFF >/dev/null
cmake --build "$OUT/build" -j"$(nproc)" --target vae_dist >/dev/null
declare -A bin=([new]=build/vae_dist [old]="$OUT/build/vae_dist")
# name:ranks:extra flags
configs=("np1:1:" "np2_shared:2:" "np2_allreduce:2:--set comm.shared_memory=false"
         "np2_repro:2:--set train.reproducible=true")
for rep in $(seq "$REPS"); do
    for c in "${configs[@]}"; do
        IFS=: read -r name np extra <<<"$c"
        for side in new old; do
            dir="$OUT/$side-$name-$rep"
            mpirun -x OPENBLAS_NUM_THREADS --bind-to none -np "$np" "${bin[$side]}" train --config configs/default.ini \
                --resume none --set run.dir="$dir" --set train.max_steps="$STEPS" --set train.log_every=100 \
                --set ckpt.every_seconds=0 $extra >/dev/null 2>&1
            awk -v k="$side $name" '/"event": "step"/ { if (++n == 1) next;
                match($0, /"samples_per_s": [0-9.e+]*/); s += substr($0, RSTART + 17, RLENGTH - 17); m++ }
                END { printf "%s %.1f\n", k, s / m }' "$dir/metrics.jsonl" >>"$OUT/runs.txt"
        done
    done
done
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "new: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + changes'), old: $(git rev-parse --short "$REV"); 784-400-20, batch 128, $STEPS steps, $REPS runs each, medians"
printf "%-14s %12s %12s %8s\n" config new old new/old
for c in "${configs[@]}"; do
    name=${c%%:*}
    n=$(awk -v k="$name" '$1 == "new" && $2 == k { print $3 }' "$OUT/runs.txt" | median)
    o=$(awk -v k="$name" '$1 == "old" && $2 == k { print $3 }' "$OUT/runs.txt" | median)
    printf "%-14s %12.0f %12.0f %8.3f\n" "$name" "$n" "$o" "$(echo "$n / $o" | bc -l)"
done
