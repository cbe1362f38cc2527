#!/usr/bin/env bash
# A rank-local failure (rank 1 cannot read the data file, injected by the
# VAE_TEST_UNREADABLE_RANK hook) must end the whole job within seconds with
# the rank named, never leave rank 0 waiting in a collective.
. "$(dirname "$0")/e2e_lib.sh"
"$VAE" synth --out "$WORK/d.h5" --n-train 256 --n-test 32 --dim 16 >/dev/null
for np in 2 4; do
    start=$(date +%s.%N)
    out=$(VAE_TEST_UNREADABLE_RANK=1 timeout -k 5 60 mpirun -x VAE_TEST_UNREADABLE_RANK -np $np "$VAE" train \
        --resume none --set data.path="$WORK/d.h5" --set run.dir="$WORK/run" --set model.hidden=8 \
        --set train.batch_size=32 2>&1); rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    check "np=$np: job failed (exit $rc, not a timeout)" test "$rc" -ne 0 -a "$rc" -ne 124 -a "$rc" -ne 137
    check "np=$np: message names rank 1 and the file" \
        bash -c "echo \"\$1\" | grep -q '\[rank 1/$np\] error: $WORK/d.h5: cannot read the file'" _ "$out"
    check "np=$np: ended within 20 s (took $secs s)" test "$(echo "$secs < 20" | bc)" -eq 1
done
finish
