# A private one-node Slurm cluster for tests (munge, slurmctld, slurmd),
# everything under one directory. Source it, then:
#   slurm_up DIR     start (exports SLURM_CONF); returns non-zero on failure
#   slurm_down DIR   stop by PID (never by name)
# Needs root and the packages slurmctld slurmd slurm-client munge.

# munged with a key, once per machine (the Slurm daemons and clients authenticate through it).
munge_up() {
    # munge: the key and directories as munged wants them.
    mkdir -p /run/munge /var/log/munge /etc/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /etc/munge /var/lib/munge
    chmod 0755 /run/munge; chmod 0700 /var/log/munge /etc/munge; chmod 0711 /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        (mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none)
        chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
    fi
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged || return 1
        for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    fi
}

# The slurm.conf lines every test cluster shares (authentication, plugins, a
# quick scheduler); KILLWAIT seconds between SIGTERM and SIGKILL.
slurm_conf_common() {
    cat <<CONF
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5
ReturnToService=2
JobRequeue=1
KillWait=$1
MinJobAge=300
MailProg=/bin/true
CONF
}

slurm_up() {
    local dir=$1 host cpus mem
    host=$(hostname -s)
    mkdir -p "$dir"/{state,spool,log,tmp}
    munge_up || return 1
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) * 9 / 10 ))
    cat >"$dir/slurm.conf" <<CONF
ClusterName=vaetest
SlurmctldHost=$host(127.0.0.1)
$(slurm_conf_common 5)
TmpFS=$dir/tmp
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -c -i -f "$SLURM_CONF" || return 1
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
    slurmd -f "$SLURM_CONF" -N "$host" || return 1
    for _ in $(seq 200); do sinfo -h -o %t 2>/dev/null | grep -q idle && return 0; sleep 0.1; done
    echo "slurm node did not become idle:"; sinfo; tail -5 "$dir/log/slurmd.log"
    return 1
}

slurm_down() {
    local dir=$1 f
    for f in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
        [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    sleep 0.5
    for f in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
        [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    return 0
}
