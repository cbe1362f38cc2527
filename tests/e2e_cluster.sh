#!/usr/bin/env bash
# Multi-node training on a simulated cluster (tests/cluster/cluster.sh):
# nodes are network namespaces with their own hostnames and addresses, Open
# MPI launches into them through an rsh agent, ranks on different nodes talk
# TCP over a bridge. Proven here, each against a 1-rank run on this machine:
#   1. 2 nodes x 2 ranks: the shared-memory reduction's cross-node path (sliced
#      and summed gradients) and a plain MPI_Allreduce agree with 1 rank (float
#      rounding); reproducible mode is bit-identical to 1 rank;
#   2. 4 nodes x 1 and x 2 ranks, reproducible: bit-identical to 1 rank;
#   3. unequal nodes (2 + 1 ranks): every rank falls back to MPI_Allreduce;
#   4. a checkpoint written on 4 nodes resumes on 2 nodes and on 1 node,
#      bit-identical to an uninterrupted run;
#   5. `mpirun -np 64` over 8 nodes trains, checkpoints and resumes, equal to
#      1 rank (start-up time and memory per rank printed);
#   6. node loss: every process of one node killed, one node cut off (link
#      down), and one node's rank frozen, mid-training: the job ends in
#      bounded time naming the node (kill, link) or, through the ranks'
#      watchdog (comm.timeout_s), the stalled collective and step (frozen); and
#      --resume auto on the surviving nodes finishes equal to an
#      uninterrupted run, losing at most one checkpoint interval;
#   7. Slurm across 2 nodes (slurmctld on the bridge, a slurmd in each node):
#      train.sbatch -N 2 with mpirun and with srun, equal to 1 rank; a
#      time-limit signal checkpoints, requeues and resumes across nodes;
#      scancel under srun commits a checkpoint at the stop step.
# Skipped (77), with the reason, where network namespaces cannot be made.
. "$(dirname "$0")/e2e_lib.sh"
. "$(dirname "$0")/cluster/cluster.sh"
why=$(cluster_possible) || { echo "skipped: $why"; exit 77; }
CL="$WORK/cluster"
trap 'cluster_slurm_down "$CL"; cluster_down "$CL"; rm -rf "$WORK"' EXIT
CLUSTER_SLOTS=2 check "4 nodes up (vaen1..vaen4 on $CLUSTER_NET.0/24)" cluster_up "$CL" 4

hostfile() { # hostfile NAME SLOTS...: node i gets the i-th slot count
    local f="$WORK/$1.hosts" i=1 s
    shift
    : >"$f"
    for s in "$@"; do echo "vaen$i slots=$s" >>"$f"; i=$((i + 1)); done
    echo "$f"
}
H22=$(hostfile n2x2 2 2); H41=$(hostfile n4x1 1 1 1 1); H42=$(hostfile n4x2 2 2 2 2)
H21=$(hostfile n2p1 2 1)

"$VAE" synth --out "$WORK/d.h5" --n-train 2048 --n-test 64 --dim 64 >/dev/null
STEPS=40
args() { # args RUN_DIR: the common flags (batch 48: divisible by 1, 2, 3, 4, 8 ranks)
    echo --set data.path="$WORK/d.h5" --set run.dir="$1" --set model.hidden=32 --set model.latent=4 \
        --set train.batch_size=48 --set train.micro_batch=2 --set train.epochs=100 \
        --set train.max_steps=$STEPS --set train.log_every=1000 --set ckpt.every_steps=10 \
        --set ckpt.every_seconds=0 --set ckpt.keep=10
}
ck() { printf '%s/ckpt/step-%08d.h5' "$1" "$2"; }
# crun HOSTFILE NP ARGS...: vae_dist over the cluster, with a hard time limit.
crun() {
    local hosts=$1 np=$2
    shift 2
    timeout -k 5 "${CRUN_TIMEOUT:-180}" "$CLUSTER_HERE/mpirun" "$hosts" -x VAE_PROGRESS -np "$np" "$VAE" "$@"
}
# max_diff A.h5 B.h5: largest |difference| of the two checkpoints' parameters
# ("nan" if either holds a non-number, so a NaN never passes a tolerance).
max_diff() {
    h5dump -b LE -d /model/params -o "$WORK/a.bin" "$1" >/dev/null &&
        h5dump -b LE -d /model/params -o "$WORK/b.bin" "$2" >/dev/null || { echo nan; return; }
    paste <(od -An -v -tf4 -w4 "$WORK/a.bin") <(od -An -v -tf4 -w4 "$WORK/b.bin") |
        awk '$1 !~ /^-?[0-9.e+-]+$/ || $2 !~ /^-?[0-9.e+-]+$/ { bad = 1 }
             { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d }
             END { if (bad || NR == 0) print "nan"; else printf "%.3g\n", m }'
}
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "nan" && a + 0 <= b + 0) }'; }

# References on this machine, 1 rank.
run_np 1 train --resume none $(args "$WORK/ref_float") >/dev/null 2>&1
run_np 1 train --resume none $(args "$WORK/ref_repro") --set train.reproducible=true >/dev/null 2>&1
REF=$(params_crc "$(ck "$WORK/ref_repro" $STEPS)")
check "1-rank references (reproducible params crc $REF)" test -n "$REF" -a -s "$(ck "$WORK/ref_float" $STEPS)"

# 1. 2 nodes x 2 ranks.
out=$(crun "$H22" 4 train --resume none $(args "$WORK/n2x2_shm") --set comm.sliced_gradients=true 2>&1)
check "2x2, shared-memory reduction: ran on vaen1 and vaen2 with sliced gradients and optimizer" \
    grep -q "shared-memory reduction of sliced parameter gradients" <<<"$out"
d_shm=$(max_diff "$(ck "$WORK/n2x2_shm" $STEPS)" "$(ck "$WORK/ref_float" $STEPS)")
check "2x2, shared-memory reduction (cross-node path) vs 1 rank: max |dparam| $d_shm <= 1e-5" below "$d_shm" 1e-5
crun "$H22" 4 train --resume none $(args "$WORK/n2x2_sum") --set comm.sliced_gradients=false >/dev/null 2>&1
d_sum=$(max_diff "$(ck "$WORK/n2x2_sum" $STEPS)" "$(ck "$WORK/ref_float" $STEPS)")
check "2x2, shared-memory reduction of summed gradients vs 1 rank: max |dparam| $d_sum <= 1e-5" below "$d_sum" 1e-5
crun "$H22" 4 train --resume none $(args "$WORK/n2x2_ar") --set comm.shared_memory=false >/dev/null 2>&1
d_ar=$(max_diff "$(ck "$WORK/n2x2_ar" $STEPS)" "$(ck "$WORK/ref_float" $STEPS)")
check "2x2, MPI_Allreduce vs 1 rank: max |dparam| $d_ar <= 1e-5" below "$d_ar" 1e-5
d_2=$(max_diff "$(ck "$WORK/n2x2_ar" $STEPS)" "$(ck "$WORK/n2x2_shm" $STEPS)")
check "2x2, shared-memory reduction vs MPI_Allreduce: max |dparam| $d_2 <= 1e-5" below "$d_2" 1e-5
crun "$H22" 4 train --resume none $(args "$WORK/n2x2_repro") --set train.reproducible=true >/dev/null 2>&1
check "2x2, reproducible: bit-identical to 1 rank" test "$(params_crc "$(ck "$WORK/n2x2_repro" $STEPS)")" = "$REF"

# 2. 4 nodes x 1 and x 2.
out=$(crun "$H41" 4 train --resume none $(args "$WORK/n4x1") --set train.reproducible=true 2>&1)
check "4x1, reproducible: bit-identical to 1 rank" test "$(params_crc "$(ck "$WORK/n4x1" $STEPS)")" = "$REF"
crun "$H42" 8 train --resume none $(args "$WORK/n4x2") --set train.reproducible=true >/dev/null 2>&1
check "4x2, reproducible: bit-identical to 1 rank" test "$(params_crc "$(ck "$WORK/n4x2" $STEPS)")" = "$REF"
out=$(crun "$H41" 4 train --resume none $(args "$WORK/n4x1f") 2>&1)
check "4x1, float: one rank a node, so MPI_Allreduce" grep -q "| float, allreduce" <<<"$out"

# 3. Unequal nodes: 2 + 1 ranks.
out=$(crun "$H21" 3 train --resume none $(args "$WORK/n2p1") 2>&1)
check "2+1 ranks: every rank fell back to MPI_Allreduce together" grep -q "| float, allreduce" <<<"$out"
d_u=$(max_diff "$(ck "$WORK/n2p1" $STEPS)" "$(ck "$WORK/ref_float" $STEPS)")
check "2+1 ranks vs 1 rank: max |dparam| $d_u <= 1e-5" below "$d_u" 1e-5

# 4. Written on 4 nodes, resumed on 2 nodes and on 1 node.
crun "$H42" 8 train --resume none $(args "$WORK/el") --set train.reproducible=true \
    --set train.max_steps=20 >/dev/null 2>&1
cp -r "$WORK/el" "$WORK/el1"
crun "$H22" 4 train --resume auto $(args "$WORK/el") --set train.reproducible=true >/dev/null 2>&1
check "4 nodes to step 20, resumed on 2 nodes: bit-identical" test "$(params_crc "$(ck "$WORK/el" $STEPS)")" = "$REF"
crun "$(hostfile n1x2 2)" 2 train --resume auto $(args "$WORK/el1") --set train.reproducible=true >/dev/null 2>&1
check "4 nodes to step 20, resumed on 1 node: bit-identical" test "$(params_crc "$(ck "$WORK/el1" $STEPS)")" = "$REF"

# 5. The user's literal command: mpirun -np 64 over 8 nodes (oversubscribed).
cluster_down "$CL"
CLUSTER_SLOTS=8 check "8 nodes up for P = 64" cluster_up "$CL" 8
args64() { # a tiny model, 2 samples a rank
    echo --set data.path="$WORK/d.h5" --set run.dir="$1" --set model.hidden=8 --set model.latent=2 \
        --set train.batch_size=128 --set train.micro_batch=2 --set train.reproducible=true \
        --set train.epochs=10 --set train.max_steps=6 --set train.log_every=3 --set ckpt.every_steps=3 \
        --set ckpt.every_seconds=0
}
run_np 1 train --resume none $(args64 "$WORK/ref64") >/dev/null 2>&1
REF64=$(params_crc "$(ck "$WORK/ref64" 6)")
t0=$(date +%s.%N)
out=$(crun "$CL/hosts" 64 train --resume none $(args64 "$WORK/p64") --set train.max_steps=3 2>&1)
t1=$(date +%s.%N)
check "P = 64 on 8 nodes: trained 3 steps and checkpointed" test -s "$(ck "$WORK/p64" 3)"
echo "# P = 64: mpirun to exit $(echo "$t1 - $t0" | bc) s for 3 steps and a checkpoint; $(grep -o 'peak memory.*' <<<"$out")"
crun "$CL/hosts" 64 train --resume auto $(args64 "$WORK/p64") >/dev/null 2>&1
check "P = 64 resumed at step 3 to 6: bit-identical to 1 rank" test "$(params_crc "$(ck "$WORK/p64" 6)")" = "$REF64"

# 6. Node loss, on 4 nodes of 1 rank, 20 ms a step (vae_dist_faults).
cluster_down "$CL"
CLUSTER_SLOTS=1 check "4 nodes up for node loss" cluster_up "$CL" 4
STEPS=200
run_np 1 train --resume none $(args "$WORK/ref_loss") --set train.reproducible=true >/dev/null 2>&1
REF_LOSS=$(params_crc "$(ck "$WORK/ref_loss" $STEPS)")
H3=$WORK/n3.hosts
printf 'vaen1 slots=1\nvaen2 slots=1\nvaen4 slots=1\n' >"$H3" # the survivors of vaen3
lose_node() { # lose_node NAME HOW TIMEOUT: HOW = kill, link or stop; prints seconds to the job's end
    local dir="$WORK/$1" how=$2 start p
    VAE_TEST_STEP_DELAY_MS=20 timeout -k 5 300 "$CLUSTER_HERE/mpirun" "$CL/hosts" -x VAE_PROGRESS \
        -x VAE_TEST_STEP_DELAY_MS -np 4 "$VAE" train --resume none $(args "$dir") \
        --set train.reproducible=true --set comm.timeout_s="$3" >"$dir.log" 2>&1 &
    local bg=$!
    for _ in $(seq 600); do [ -e "$(ck "$dir" 50)" ] && break; sleep 0.1; done
    start=$(date +%s.%N)
    case $how in
        kill) for p in $(cluster_node_pids 3); do kill -9 "$p"; done ;;
        link) cluster_link 3 down ;;
        stop) for p in $(cluster_node_pids 3); do [ "$(cat /proc/$p/comm)" = "$(basename "$VAE")" ] && kill -STOP "$p"; done ;;
    esac
    wait $bg
    echo "$(date +%s.%N) - $start" | bc
}
# kill: every process of vaen3 (its rank and Open MPI's daemon) killed.
# link: vaen3 cut off; mpirun gives its daemon up after TCP keepalive (about
#       16 s, tests/cluster/mpirun), before the watchdog (60 s) would fire.
# stop: vaen3's rank frozen (SIGSTOP) while node and network live on: the
#       others wait in a collective until the watchdog (5 s) ends the job.
for how in kill link stop; do
    dir="$WORK/lost_$how"
    timeout_s=5
    [ $how = link ] && timeout_s=60
    secs=$(lose_node "lost_$how" $how $timeout_s)
    last=$(cat "$dir/ckpt/latest")
    echo "# vaen3 lost by $how: the job ended $secs s later; latest checkpoint $last"
    check "vaen3 lost ($how): the job ended within 60 s ($secs s)" below "$secs" 60
    check "vaen3 lost ($how): a checkpoint committed before the loss survives ($last)" \
        test "$last" \> "step-00000049.h5"
    case $how in
        kill) check "vaen3 lost (kill): the message names the node or its address" \
                  grep -qE "vaen3|198\.18\.0\.13" "$dir.log" ;;
        link) check "vaen3 cut off (link down): mpirun names the lost node" \
                  grep -q "Remote daemon: .* on node vaen3" "$dir.log"
              cluster_link 3 up ;;
        stop) check "vaen3's rank stalled: the watchdog names the host, the collective and the step" \
                  grep -qE "collective watchdog on vaen[124]: waited [0-9]+ s .* in MPI_[A-Za-z]+ at step [0-9]+" "$dir.log" ;;
    esac
    for p in $(cluster_node_pids 3); do kill -9 "$p" 2>/dev/null; done
    crun "$H3" 3 train --resume auto $(args "$dir") --set train.reproducible=true >"$dir.resume.log" 2>&1
    check "vaen3 lost ($how): resumed on the 3 others from $last, bit-identical to an uninterrupted run" \
        test "$(params_crc "$(ck "$dir" $STEPS)")" = "$REF_LOSS"
done

# 7. Slurm across nodes.
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; then
    cluster_down "$CL"
    CLUSTER_SLOTS=2 check "2 nodes up for Slurm" cluster_up "$CL" 2
    check "Slurm: slurmctld on $CLUSTER_NET.1, a slurmd in vaen1 and vaen2" cluster_slurm_up "$CL"
    ROOT=$(cd "$(dirname "$0")/.." && pwd)
    # The jobs inherit this environment: Open MPI on the bridge, idle ranks yield.
    export OMPI_MCA_btl_tcp_if_include=$CLUSTER_NET.0/24 OMPI_MCA_oob_tcp_if_include=$CLUSTER_NET.0/24
    export OMPI_MCA_mpi_yield_when_idle=1
    : >"$WORK/empty.ini"
    job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
    wait_done() {
        local st
        for _ in $(seq 600); do
            st=$(job_state "$1")
            [ "$st" = COMPLETED ] || [ "$st" = FAILED ] || [ "$st" = CANCELLED ] && break
            sleep 0.5
        done
        echo "$st"
    }
    submit() { # submit LAUNCHER RUN_DIR STEPS [env...]: sbatch -N 2 x 2 tasks; prints the job id
        local launcher=$1 dir=$2 steps=$3
        shift 3
        env "$@" VAE_CONFIG="$WORK/empty.ini" VAE_BIN="$VAE" VAE_LAUNCHER="$launcher" \
            VAE_ARGS="$(STEPS=$steps args "$dir") --set train.reproducible=true" \
            sbatch --parsable -N 2 --ntasks-per-node=2 -t 5 --output="$dir.out" "$ROOT/launch/slurm/train.sbatch"
    }
    for launcher in mpirun srun; do
        dir="$WORK/slurm_$launcher"
        st=$(wait_done "$(submit $launcher "$dir" 40)")
        check "Slurm -N 2, $launcher: completed ($st) with 4 ranks on 2 nodes" \
            bash -c "test '$st' = COMPLETED && grep -q '4 ranks on 2 nodes' '$dir.out'"
        check "Slurm -N 2, $launcher: bit-identical to 1 rank" test "$(params_crc "$(ck "$dir" 40)")" = "$REF"
    done
    # The time-limit signal (as the script's own timer sends it), across nodes.
    dir="$WORK/slurm_usr1"
    jid=$(submit mpirun "$dir" 200 VAE_TEST_STEP_DELAY_MS=20)
    for _ in $(seq 600); do [ -e "$(ck "$dir" 50)" ] && break; sleep 0.1; done
    scancel --batch --signal=USR1 "$jid"
    st=$(wait_done "$jid")
    check "Slurm -N 2: USR1 checkpointed, requeued and resumed ($st, $(scontrol show job "$jid" | grep -o 'Restarts=[0-9]*'))" \
        bash -c "test '$st' = COMPLETED && scontrol show job $jid | grep -q Restarts=1 && grep -q 'resuming at step' '$dir.out'"
    check "Slurm -N 2: after the requeue, bit-identical to an uninterrupted run" \
        test "$(params_crc "$(ck "$dir" 200)")" = "$REF_LOSS"
    # scancel under srun: the ranks have KillWait to checkpoint.
    dir="$WORK/slurm_cancel"
    jid=$(submit srun "$dir" 200 VAE_TEST_STEP_DELAY_MS=20)
    for _ in $(seq 600); do [ -e "$(ck "$dir" 50)" ] && break; sleep 0.1; done
    scancel "$jid"
    st=$(wait_done "$jid")
    latest=$(cat "$dir/ckpt/latest")
    echo "# scancel -N 2 under srun: $st, latest $latest"
    check "Slurm -N 2, srun: scancel ended the job ($st) after a checkpoint at the stop step ($latest)" \
        bash -c "test '$st' = CANCELLED && test '$latest' \\> step-00000050.h5"
    [ "$st" = CANCELLED ] || sed 's/^/#   job output: /' "$dir.out" | tail -20 # why, for a failure
else
    echo "# Slurm section skipped: slurmctld, slurmd or sbatch not installed"
fi

finish
