#!/usr/bin/env bash
# The hostile-input battery of issue 13, rerun on demand (not in CI: about
# 10 minutes). Damaged datasets, damaged checkpoints and bad configs go
# through the real CLI; each case ends as one of
#   error    exit 1 or 2 with an "error:" line (the wanted outcome)
#   same     exit 0 with exactly the output of the undamaged file: the bytes
#            hit were ones this command does not read (eval, sample, recon
#            read no optimizer state; info reads the header only)
#   silent   exit 0 with another output: a silent acceptance (configs: a
#            value that is valid counts here, e.g. lr = 1.5)
#   crash    a signal, or a sanitizer report
#   hang     killed by the time limit
#   tests/battery.sh [BINARY=build-asan/vae_dist] [FAMILIES="dataset checkpoint config"]
# (an ASan+UBSan build finds more).
set -uo pipefail
VAE=$(realpath "${1:-$(dirname "$0")/../build-asan/vae_dist}")
cd "$(dirname "$0")/.."
FAMILIES=${2:-dataset checkpoint config}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 VAE_PROGRESS=0
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# What a command printed and wrote, without what changes from run to run
# (times, run ids, paths): equal signatures mean equal results.
signature() { # signature OUTPUT ARGS...
    local out=$1 f=""; shift
    while [ $# -gt 1 ]; do [ "$1" = --out ] && f=$2; shift; done
    { echo "$out" | grep -v "loaded checkpoint\|wrote\|^vae_dist\|done:\|committed" |
        sed -E 's/"(time|run|seconds|checkpoint|out)": [^,}]*//g; s#/tmp/[^ ,"]*##g; s/[0-9]+ samples\/s//g'
      [ -n "$f" ] && [ -e "$f" ] && md5sum <"$f"; } | md5sum | cut -c1-12
}
# outcome FAMILY COMMAND...: run one case, append "FAMILY KIND" to $W/results.
# A case's reference signature, if any, is in $W/ref.<command>.
outcome() {
    local fam=$1; shift
    local out rc kind cmd=$5
    out=$(timeout -k 5 60 "$@" 2>&1); rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then kind=hang
    elif echo "$out" | grep -qE "AddressSanitizer|runtime error|Segmentation|stack smashing|core dumped|signal [0-9]"; then kind=crash
    elif [ "$rc" -ge 128 ]; then kind=crash
    elif [ "$rc" -eq 0 ] && [ -e "$W/ref.$fam.$cmd" ] && [ "$(signature "$out" "$@")" = "$(cat "$W/ref.$fam.$cmd")" ]; then kind=same
    elif [ "$rc" -eq 0 ]; then kind=silent
    elif echo "$out" | grep -q "error:"; then kind=error
    else kind=crash; fi
    echo "$fam $kind" >>"$W/results"
    if [ "$kind" != error ] && [ "$kind" != same ] && [ "$fam" != config ]; then
        echo "# $fam $kind (exit $rc): $*"; echo "$out" | grep -E "ERROR|error|runtime|SUMMARY" | head -3
    fi
}
export -f outcome signature
export W
# Cases are lines of $W/cases ("FAMILY COMMAND..."), JOBS (6) at a time: most of a case is waiting.
add() { printf '%q ' "$@" >>"$W/cases"; echo >>"$W/cases"; }
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
: >"$W/cases"
"$VAE" synth --out "$W/d.h5" --n-train 256 --n-test 64 --dim 16 >/dev/null 2>&1
"${M[@]}" train --set data.path="$W/d.h5" --set run.dir="$W/run" --set model.hidden=8 --set model.latent=2 \
    --set train.batch_size=32 --set train.max_steps=4 >/dev/null 2>&1
C="$W/run/ckpt/step-00000004.h5"
[ -e "$C" ] || { echo "could not train the reference model"; exit 1; }

# Reference signatures: each command on the undamaged files.
ref_case() { local fam=$1; shift; local out; out=$("$@" 2>&1) || { echo "reference failed: $*"; exit 1; }
    signature "$out" "$@" >"$W/ref.$fam.$5"; }
ref_case dataset "${M[@]}" train --resume none --set data.path="$W/d.h5" --set run.dir="$W/r-ref" \
    --set model.hidden=8 --set model.latent=2 --set train.batch_size=32 --set train.max_steps=2
for cmd in train eval info sample recon; do
    case $cmd in
        train) a=(--resume "$C" --set data.path="$W/d.h5" --set run.dir="$W/r-ref2" --set model.hidden=8
                  --set model.latent=2 --set train.batch_size=32 --set train.max_steps=6) ;;
        eval) a=(--data "$W/d.h5") ;; info) a=() ;; sample) a=(--n 4 --out "$W/s.png") ;;
        recon) a=(--data "$W/d.h5" --n 4 --out "$W/r.png") ;;
    esac
    [ $cmd = train ] || a=(--checkpoint "$C" "${a[@]}")
    ref_case checkpoint "${M[@]}" $cmd "${a[@]}"
done
mkdir -p "$W/ds" "$W/ck"
mutants "$W/d.h5" "$W/ds/d"
for f in "$W"/ds/*; do
    add dataset "${M[@]}" train --resume none --set data.path="$f" --set run.dir="$W/r-ds" \
        --set model.hidden=8 --set model.latent=2 --set train.batch_size=32 --set train.max_steps=2
done
mutants "$C" "$W/ck/c"
for f in "$W"/ck/*; do
    add checkpoint "${M[@]}" train --resume "$f" --set data.path="$W/d.h5" --set run.dir="$W/r-ck" \
        --set model.hidden=8 --set model.latent=2 --set train.batch_size=32 --set train.max_steps=6
    add checkpoint "${M[@]}" eval --checkpoint "$f" --data "$W/d.h5"
    add checkpoint "${M[@]}" info --checkpoint "$f"
    add checkpoint "${M[@]}" sample --checkpoint "$f" --n 4 --out "$W/s.png"
    add checkpoint "${M[@]}" recon --checkpoint "$f" --data "$W/d.h5" --n 4 --out "$W/r.png"
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
    add config "${M[@]}" train --config "$f" --resume none --set data.path="$W/d.h5" \
        --set run.dir="$W/r-cfg" --set train.max_steps=1
done

# The run directories of parallel cases must differ: each case gets its own.
awk '{ gsub(/r-(ds|ck|cfg)/, "&" NR); gsub(/\/s\.png/, "/s" NR ".png"); gsub(/\/r\.png/, "/r" NR ".png"); print }' \
    "$W/cases" >"$W/cases.n"
grep -E "^($(echo "$FAMILIES" | tr ' ' '|')) " "$W/cases.n" | tr '\n' '\0' | xargs -0 -P "${JOBS:-6}" -I{} bash -c "outcome {}"
for fam in $FAMILIES; do
    echo "$fam: $(grep -c "^$fam error" "$W/results") clean errors," \
        "$(grep -c "^$fam same" "$W/results") accepted with the undamaged file's output," \
        "$(grep -c "^$fam silent" "$W/results") accepted otherwise, $(grep -c "^$fam crash" "$W/results") crashes," \
        "$(grep -c "^$fam hang" "$W/results") hangs"
done
