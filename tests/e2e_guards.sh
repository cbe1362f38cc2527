#!/usr/bin/env bash
# The run's guards, through the fault hooks:
#   - a non-finite gradient on one rank is seen on the reduced gradient, the
#     step is skipped on every rank together, and training goes on (both node
#     reductions);
#   - train.max_skipped consecutive non-finite steps stop the job (exit 1)
#     with a message, in float and in reproducible mode;
#   - a replica that drifts is caught by the replica check, which names it;
#   - on one host, a rank stopped (SIGSTOP) mid-run: the watchdog ends the job
#     after comm.timeout_s (3 s), not before it and not minutes later.
. "$(dirname "$0")/e2e_lib.sh"
"$VAE" synth --out "$WORK/d.h5" --n-train 512 --n-test 32 --dim 16 >/dev/null
T=(--resume none --set data.path="$WORK/d.h5" --set run.dir="$WORK/run" --set model.hidden=8
   --set model.latent=2 --set train.batch_size=32 --set train.max_steps=40 --set train.micro_batch=4)

# Both node reductions, forced (auto sums for this tiny model): sliced parameter gradients
# and summed whole gradients.
for sliced in true false; do
    out=$(VAE_TEST_NAN_STEPS=5:6 timeout -k 5 120 mpirun -x VAE_TEST_NAN_STEPS -np 2 "$VAE" train "${T[@]}" \
        --set comm.sliced_gradients=$sliced 2>&1); rc=$?
    check "one NaN step on rank 1, sliced_gradients=$sliced: the run finishes (exit $rc)" test "$rc" -eq 0
    check "one NaN step, sliced_gradients=$sliced: skipped on every rank and reported" \
        bash -c "echo \"\$1\" | grep -q 'step 6: non-finite gradient (norm nan); step skipped on every rank (1 in a row)'" _ "$out"
done
for mode in false true; do
    expect_error "NaN from step 5 on, reproducible=$mode: stops after max_skipped = 3" \
        "3 consecutive steps had non-finite gradients; stopping" \
        env VAE_TEST_NAN_STEPS=5:1000 timeout -k 5 120 mpirun -x VAE_TEST_NAN_STEPS -np 2 "$VAE" train \
        "${T[@]}" --set train.max_skipped=3 --set train.reproducible=$mode
done
# Per-rank replicas: node-shared parameters (the default) cannot drift within a node.
expect_error "rank 2 of 4 drifts: the replica check names it" \
    "replica check at step 10: parameters of rank 2 differ from rank 0" \
    env VAE_TEST_DIVERGE_RANK=2 timeout -k 5 120 mpirun -x VAE_TEST_DIVERGE_RANK -np 4 "$VAE" train \
    "${T[@]}" --set train.replica_check_every=10 --set comm.shared_memory=false
# The watchdog on one host: both ranks run 20 ms steps; one is stopped; the
# other waits in a collective and the watchdog must end the job (exit 3) after
# 3 s, saying how long it waited.
VAE_TEST_STEP_DELAY_MS=20 timeout -k 5 120 mpirun -x VAE_TEST_STEP_DELAY_MS -np 2 "$VAE" train "${T[@]}" \
    --set run.dir="$WORK/watch" --set train.max_steps=100000 --set train.epochs=100000 \
    --set comm.timeout_s=3 >"$WORK/watch.log" 2>&1 &
BG=$!
for _ in $(seq 300); do [ -s "$WORK/watch/metrics.jsonl" ] && break; sleep 0.1; done
sleep 1
victim=$(pgrep -f "run.dir=$WORK/watch" | while read -r p; do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = "$(basename "$VAE" | cut -c1-15)" ] && echo "$p"; done | tail -1)
t0=$(date +%s.%N)
kill -STOP "$victim"
wait $BG; rc=$?
secs=$(echo "$(date +%s.%N) - $t0" | bc)
kill -9 "$victim" 2>/dev/null
check "a stopped rank: the watchdog ends the job with exit 3 (exit $rc) in ${secs%.*} s, within [3, 60)" \
    bash -c "[ $rc -eq 3 ] && [ \$(echo '$secs >= 3 && $secs < 60' | bc) -eq 1 ]"
check "... and says it waited at least comm.timeout_s" \
    grep -qE "collective watchdog on .*: waited [3-9] s \(comm.timeout_s = 3\)" "$WORK/watch.log"
finish
