#!/usr/bin/env bash
# The hostile-input battery of issue 13, rerun on demand (not in CI: about
# 10 minutes). Damaged datasets, damaged checkpoints and bad configs go
# through the real CLI; each case ends as one of
#   error    exit 1 or 2 with an "error:" line (the wanted outcome)
#   accepted exit 0: for damaged files this means the bytes hit were unused
#            (the data and parameters read passed their CRC-32)
#   crash    a signal, or a sanitizer report
#   hang     killed by the time limit
#   tests/battery.sh [BINARY=build-asan/vae_dist]   (an ASan+UBSan build finds more)
set -uo pipefail
cd "$(dirname "$0")/.."
VAE=$(realpath "${1:-build-asan/vae_dist}")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 VAE_PROGRESS=0
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
declare -A count
outcome() { # outcome FAMILY COMMAND...: run, classify, count
    local fam=$1; shift
    local out rc kind
    out=$(timeout -k 5 60 "$@" 2>&1); rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then kind=hang
    elif echo "$out" | grep -qE "AddressSanitizer|runtime error|Segmentation|stack smashing|core dumped|signal [0-9]"; then kind=crash
    elif [ "$rc" -ge 128 ]; then kind=crash
    elif [ "$rc" -eq 0 ]; then kind=accepted
    elif echo "$out" | grep -q "error:"; then kind=error
    else kind=crash; fi
    count[$fam.$kind]=$((${count[$fam.$kind]:-0} + 1))
    if [ "$kind" = crash ] || [ "$kind" = hang ]; then
        echo "# $fam $kind (exit $rc): $*"; echo "$out" | grep -E "ERROR|error|runtime|SUMMARY" | head -3
    fi
}
mutants() { # mutants FILE PREFIX: 80 byte flips, 20 truncations, 10 zeroed ranges
    local f=$1 p=$2 size i off
    size=$(stat -c %s "$f")
    for i in $(seq 0 79); do
        off=$((i * size / 80 + 7)); cp "$f" "$p-flip$i"
        printf "$(printf '\\x%02x' $(((i * 37 + 1) % 256)))" | dd of="$p-flip$i" bs=1 seek=$off conv=notrunc status=none
    done
    for i in $(seq 0 19); do cp "$f" "$p-trunc$i"; truncate -s $((i * size / 20)) "$p-trunc$i"; done
    for i in $(seq 0 9); do
        cp "$f" "$p-zero$i"
        dd if=/dev/zero of="$p-zero$i" bs=1 seek=$((i * size / 10)) count=$((size / 40)) conv=notrunc status=none
    done
}
M=(mpirun -np 1 "$VAE")
"$VAE" synth --out "$W/d.h5" --n-train 256 --n-test 64 --dim 16 >/dev/null 2>&1
"${M[@]}" train --set data.path="$W/d.h5" --set run.dir="$W/run" --set model.hidden=8 --set model.latent=2 \
    --set train.batch_size=32 --set train.max_steps=4 >/dev/null 2>&1
C="$W/run/ckpt/step-00000004.h5"
[ -e "$C" ] || { echo "could not train the reference model"; exit 1; }

mkdir -p "$W/ds" "$W/ck"
mutants "$W/d.h5" "$W/ds/d"
for f in "$W"/ds/*; do
    outcome dataset "${M[@]}" train --resume none --set data.path="$f" --set run.dir="$W/r-ds" \
        --set model.hidden=8 --set model.latent=2 --set train.batch_size=32 --set train.max_steps=2
done
mutants "$C" "$W/ck/c"
for f in "$W"/ck/*; do
    outcome checkpoint "${M[@]}" train --resume "$f" --set data.path="$W/d.h5" --set run.dir="$W/r-ck" \
        --set model.hidden=8 --set model.latent=2 --set train.batch_size=32 --set train.max_steps=6
    outcome checkpoint "${M[@]}" eval --checkpoint "$f" --data "$W/d.h5"
    outcome checkpoint "${M[@]}" info --checkpoint "$f"
    outcome checkpoint "${M[@]}" sample --checkpoint "$f" --n 4 --out "$W/s.png"
    outcome checkpoint "${M[@]}" recon --checkpoint "$f" --data "$W/d.h5" --n 4 --out "$W/r.png"
done

# Configs: every key with hostile values, and malformed files.
keys=$("$VAE" config | sed -n 's/^| `\([a-z_]*\)\.\([a-z_]*\)`.*/\1 \2/p')
bad=("" "-1" "1e309" "abc")
n=0
while read -r sec key; do
    for v in "${bad[@]}"; do
        n=$((n + 1)); printf '[%s]\n%s = %s\n' "$sec" "$key" "$v" >"$W/c$n.ini"
    done
done <<<"$keys"
printf '[model]\nhidden = 64\n  128\n' >"$W/c-indent.ini"
printf '[train]\nepochs = 1\nepochs = 2\n' >"$W/c-dup.ini"
printf 'epochs = 1\n' >"$W/c-nosection.ini"
printf '[run]\ndir = %s\n' "$(head -c 3000 /dev/zero | tr '\0' d)" >"$W/c-long.ini"
head -c 2000 /dev/urandom >"$W/c-binary.ini"
printf '[trian]\nepochs = 1\n' >"$W/c-section.ini"
mkdir -p "$W/c-dir.ini"; mkfifo "$W/c-fifo.ini"
for f in "$W"/c*.ini; do
    outcome config "${M[@]}" train --config "$f" --resume none --set data.path="$W/d.h5" \
        --set run.dir="$W/r-cfg" --set train.max_steps=1
done

for fam in dataset checkpoint config; do
    echo "$fam: ${count[$fam.error]:-0} clean errors, ${count[$fam.accepted]:-0} accepted," \
        "${count[$fam.crash]:-0} crashes, ${count[$fam.hang]:-0} hangs"
done
