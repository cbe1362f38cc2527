#!/usr/bin/env bash
# Checkpoint write and read time and bandwidth, for the default model
# (0.65 M parameters) and one of about 96 M parameters (784-10000-4000-20),
# on 1 and 2 ranks, against dd writing (with fsync) and reading the same
# number of bytes on the same disk, through the page cache and with
# oflag=direct (vae_dist writes with O_DIRECT by default: ckpt.direct_io).
# Adam, so a checkpoint holds 3 buffers. Extra `--set` options for every
# vae_dist run may follow in CKPT_SET (e.g. CKPT_SET="--set ckpt.direct_io=false").
# Reads may come from the page cache (as they would on a restart on the same
# node); the dd read does too, into one small buffer, while a load fills
# fresh memory (docs/performance.md). The checkpoint's own log line splits
# its time into "written" and "fsync and rename".
#   bench/ckpt_io.sh [DIR=/tmp] [REPS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp}; REPS=${2:-3}; read -r -a extra <<<"${CKPT_SET:-}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d "$DIR/vae_ckpt_bench_XXXXXX")
trap 'rm -rf "$W"' EXIT
build/vae_dist synth --out "$W/d.h5" --n-train 256 --n-test 8 --dim 784 >/dev/null
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf "%-10s %3s %9s %10s %10s %10s %10s\n" model ranks MB write_s write_MB/s read_s read_MB/s
for model in "default:400" "96M:10000,4000"; do
    IFS=: read -r name hidden <<<"$model"
    for np in 1 2; do
        for rep in $(seq "$REPS"); do
            run="$W/run-$name-$np-$rep"
            mpirun -np $np build/vae_dist train --resume none --set data.path="$W/d.h5" --set run.dir="$run" \
                --set model.hidden="$hidden" --set train.batch_size=8 --set train.max_steps=1 \
                --set ckpt.every_seconds=0 "${extra[@]}" 2>&1 | sed -n 's/.*committed.*: \([0-9.]*\) MB in \([0-9.]*\) s.*/\1 \2/p' >>"$W/w-$name-$np"
            mpirun -np $np build/vae_dist train --resume auto --set data.path="$W/d.h5" --set run.dir="$run" \
                --set model.hidden="$hidden" --set train.batch_size=8 --set train.max_steps=1 \
                --set ckpt.every_seconds=0 "${extra[@]}" 2>&1 | sed -n 's/.*loaded checkpoint.*: \([0-9.]*\) MB in \([0-9.]*\) s.*/\1 \2/p' >>"$W/r-$name-$np"
            rm -rf "$run"
        done
        mb=$(awk '{ print $1 }' "$W/w-$name-$np" | head -1)
        ws=$(awk '{ print $2 }' "$W/w-$name-$np" | median); rs=$(awk '{ print $2 }' "$W/r-$name-$np" | median)
        printf "%-10s %3d %9.1f %10.3f %10.0f %10.3f %10.0f\n" "$name" $np "$mb" "$ws" "$(echo "$mb / $ws" | bc -l)" \
            "$rs" "$(echo "$mb / $rs" | bc -l)"
    done
    count=$(printf "%.0f" "$mb")
    for rep in $(seq "$REPS"); do
        s=$(date +%s.%N); dd if=/dev/zero of="$W/dd" bs=1M count="$count" conv=fsync status=none
        echo "$(date +%s.%N) - $s" | bc >>"$W/ddw-$name"
        s=$(date +%s.%N); dd if="$W/dd" of=/dev/null bs=1M status=none
        echo "$(date +%s.%N) - $s" | bc >>"$W/ddr-$name"
        rm -f "$W/dd"
        s=$(date +%s.%N); dd if=/dev/zero of="$W/dd" bs=1M count="$count" oflag=direct conv=fsync status=none
        echo "$(date +%s.%N) - $s" | bc >>"$W/dddw-$name"
        s=$(date +%s.%N); dd if="$W/dd" of=/dev/null bs=1M iflag=direct status=none
        echo "$(date +%s.%N) - $s" | bc >>"$W/dddr-$name"
        rm -f "$W/dd"
    done
    ws=$(median <"$W/ddw-$name"); rs=$(median <"$W/ddr-$name")
    printf "%-10s %3s %9.1f %10.3f %10.0f %10.3f %10.0f\n" "dd" "-" "$count" "$ws" "$(echo "$count / $ws" | bc -l)" \
        "$rs" "$(echo "$count / $rs" | bc -l)"
    ws=$(median <"$W/dddw-$name"); rs=$(median <"$W/dddr-$name")
    printf "%-10s %3s %9.1f %10.3f %10.0f %10.3f %10.0f\n" "dd-direct" "-" "$count" "$ws" "$(echo "$count / $ws" | bc -l)" \
        "$rs" "$(echo "$count / $rs" | bc -l)"
done
