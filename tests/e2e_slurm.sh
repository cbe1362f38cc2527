#!/usr/bin/env bash
# Slurm, for real: a private slurmctld + slurmd + munge on this machine.
# launch/slurm/train.sbatch trains a tiny model (reproducible mode, 2 tasks);
# an early USR1 (scancel --batch --signal=USR1, as --signal=B:USR1@T would
# send) makes the ranks checkpoint and exit 42, the job requeues itself,
# resumes with --resume auto and completes. The final parameters must equal
# an uninterrupted run's. Skipped (77) without the Slurm packages.
. "$(dirname "$0")/e2e_lib.sh"
. "$(dirname "$0")/slurm/cluster.sh"
for b in slurmctld slurmd sbatch munged; do
    command -v "$b" >/dev/null || { echo "skipped: $b not installed"; exit 77; }
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CL="$WORK/cluster"
trap 'slurm_down "$CL"; rm -rf "$WORK"' EXIT
check "slurm controller and node up" slurm_up "$CL"

"$VAE" synth --out "$WORK/d.h5" --n-train 4096 --n-test 64 --dim 64 >/dev/null
cat >"$WORK/run.ini" <<INI
[data]
path = $WORK/d.h5
[model]
hidden = 32
latent = 4
[train]
batch_size = 64
micro_batch = 16
reproducible = true
epochs = 100
max_steps = 400
log_every = 100
[ckpt]
every_steps = 50
every_seconds = 0
[run]
dir = $WORK/slurm-run
INI
run_np 2 train --config "$WORK/run.ini" --resume none --set run.dir="$WORK/ref" >/dev/null 2>&1
REF=$(params_crc "$WORK/ref/ckpt/step-00000400.h5")
check "uninterrupted reference (params crc $REF)" test -n "$REF"

cd "$WORK"
jid=$(VAE_CONFIG="$WORK/run.ini" VAE_BIN="$VAE" VAE_TEST_STEP_DELAY_MS=10 \
    sbatch --parsable -n 2 -t 5 --output="$WORK/job-%j.out" "$ROOT/launch/slurm/train.sbatch")
check "sbatch accepted the job ($jid)" test -n "$jid"
for _ in $(seq 600); do [ -e "$WORK/slurm-run/ckpt/step-00000100.h5" ] && break; sleep 0.1; done
check "the job is training (a checkpoint at step 100)" test -e "$WORK/slurm-run/ckpt/step-00000100.h5"
scancel --batch --signal=USR1 "$jid"
# Poll (sbatch --wait polls slowly): requeue, second run, completion.
state=""
for _ in $(seq 1200); do
    state=$(scontrol show job "$jid" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    [ "$state" = COMPLETED ] || [ "$state" = FAILED ] || [ "$state" = CANCELLED ] && break
    sleep 0.5
done
info=$(scontrol show job "$jid")
out="$WORK/job-$jid.out"
check "job completed (state $state)" test "$state" = COMPLETED
check "exit code 0:0" bash -c "echo \"\$1\" | grep -q 'ExitCode=0:0'" _ "$info"
check "requeued once (Restarts=1)" bash -c "echo \"\$1\" | grep -q 'Restarts=1'" _ "$info"
check "first run: the signal was forwarded and the ranks checkpointed" grep -q "stopped by a signal at step" "$out"
check "first run: exit 42 led to a requeue" grep -q "checkpointed: requeueing job $jid" "$out"
check "second run resumed from the checkpoint" grep -q "resuming at step" "$out"
check "final parameters equal the uninterrupted run's" \
    test "$(params_crc "$WORK/slurm-run/ckpt/step-00000400.h5")" = "$REF"
[ "$FAILED" -eq 0 ] || { echo "--- job output"; cat "$out"; echo "--- slurmctld"; tail -20 "$CL/log/slurmctld.log"; }

# chain.sh: two jobs, the second after the first (afterany). The first is
# stopped early and may not requeue (VAE_MAX_REQUEUES=0): the second job
# must continue the training from its checkpoint and finish it.
jobs=$(VAE_CONFIG="$WORK/run.ini" VAE_BIN="$VAE" VAE_TEST_STEP_DELAY_MS=10 VAE_MAX_REQUEUES=0 \
    VAE_ARGS="--set run.dir=$WORK/chain-run" "$ROOT/launch/slurm/chain.sh" 2 -n 2 -t 5 --output="$WORK/chain-%j.out")
j1=$(echo "$jobs" | sed -n 1p); j2=$(echo "$jobs" | sed -n 2p)
check "chain.sh submitted two jobs ($j1, $j2)" test -n "$j1" -a -n "$j2"
check "the second depends on the first (afterany)" \
    bash -c "scontrol show job $j2 | grep -q 'Dependency=afterany:$j1'"
for _ in $(seq 600); do [ -e "$WORK/chain-run/ckpt/step-00000100.h5" ] && break; sleep 0.1; done
scancel --batch --signal=USR1 "$j1"
for _ in $(seq 1200); do
    s2=$(scontrol show job "$j2" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    [ "$s2" = COMPLETED ] || [ "$s2" = FAILED ] || [ "$s2" = CANCELLED ] && break
    sleep 0.5
done
check "chain: the first job stopped with exit 42 after a checkpoint" \
    bash -c "scontrol show job $j1 | grep -q 'ExitCode=42:0'"
check "chain: the second job resumed and completed (state $s2)" \
    bash -c "test '$s2' = COMPLETED && grep -q 'resuming at step' '$WORK/chain-$j2.out'"
check "chain: final parameters equal the uninterrupted run's" \
    test "$(params_crc "$WORK/chain-run/ckpt/step-00000400.h5")" = "$REF"
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
wait_done() { # wait_done JOBID: until it ends (10 minutes at most)
    local st
    for _ in $(seq 1200); do
        st=$(job_state "$1")
        [ "$st" = COMPLETED ] || [ "$st" = FAILED ] || [ "$st" = CANCELLED ] || [ "$st" = TIMEOUT ] && break
        sleep 0.5
    done
    echo "$st"
}

# scancel of a running job: Slurm sends SIGTERM to the batch shell, mpirun and
# the ranks alike. The ranks checkpoint at the next step; the job is not requeued.
jid=$(VAE_CONFIG="$WORK/run.ini" VAE_BIN="$VAE" VAE_TEST_STEP_DELAY_MS=10 VAE_ARGS="--set run.dir=$WORK/cancel-run" \
    sbatch --parsable -n 2 -t 5 --output="$WORK/cancel-%j.out" "$ROOT/launch/slurm/train.sbatch")
for _ in $(seq 600); do [ -e "$WORK/cancel-run/ckpt/step-00000100.h5" ] && break; sleep 0.1; done
scancel "$jid"
st=$(wait_done "$jid")
latest=$(cat "$WORK/cancel-run/ckpt/latest")
check "scancel: job $jid ended CANCELLED ($st), not requeued" \
    bash -c "test '$st' = CANCELLED && scontrol show job $jid | grep -q 'Restarts=0'"
# (mpirun, itself terminated, may drop the ranks' last lines: the files tell.)
check "scancel: the ranks committed a checkpoint at the stop step ($latest, after step-00000100.h5)" \
    test "$latest" \> step-00000100.h5
check "scancel: run.dir/status says 42 (checkpointed) and the script exits 42, whatever mpirun returned" \
    bash -c "grep -q '^42 ' '$WORK/cancel-run/status' && grep -q 'checkpointed and stopped.*exit 42' '$WORK/cancel-$jid.out'"
check "scancel: the script did not try to requeue" \
    bash -c "grep -q 'not requeued by this script' '$WORK/cancel-$jid.out' && ! grep -q 'requeueing job' '$WORK/cancel-$jid.out'"
jid2=$(VAE_CONFIG="$WORK/run.ini" VAE_BIN="$VAE" VAE_ARGS="--set run.dir=$WORK/cancel-run" \
    sbatch --parsable -n 2 -t 5 --output="$WORK/cancel-%j.out" "$ROOT/launch/slurm/train.sbatch")
st=$(wait_done "$jid2")
check "scancel: a new job resumed from $latest and completed ($st)" \
    bash -c "test '$st' = COMPLETED && grep -q 'resuming at step' '$WORK/cancel-$jid2.out'"
check "scancel: final parameters equal the uninterrupted run's" \
    test "$(params_crc "$WORK/cancel-run/ckpt/step-00000400.h5")" = "$REF"

# A time limit shorter than the signal lead (-t 1 against 180 s): the script
# stops the run at half the time instead, requeues, and the next segments finish it.
jid=$(VAE_CONFIG="$WORK/run.ini" VAE_BIN="$VAE" VAE_TEST_STEP_DELAY_MS=100 VAE_ARGS="--set run.dir=$WORK/short-run" \
    sbatch --parsable -n 2 -t 1 --output="$WORK/short-%j.out" "$ROOT/launch/slurm/train.sbatch")
st=$(wait_done "$jid")
info=$(scontrol show job "$jid")
restarts=$(echo "$info" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
echo "# -t 1: state $st, $restarts requeues, $(grep -c 'stopped by a signal' "$WORK/short-$jid.out") checkpointed stops"
check "-t 1 with a 180 s lead: completed ($st) after $restarts requeue(s), exit 0" \
    bash -c "test '$st' = COMPLETED && test '${restarts:-0}' -ge 1 && echo '$info' | grep -q 'ExitCode=0:0'"
check "-t 1: final parameters equal the uninterrupted run's" \
    test "$(params_crc "$WORK/short-run/ckpt/step-00000400.h5")" = "$REF"

finish
