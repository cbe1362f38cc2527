# A simulated cluster on one machine: N nodes, each a network namespace with
# its own hostname and address on a bridge, Open MPI launching into them
# through an rsh agent, optionally a Slurm controller with one slurmd per
# node. Addresses come from 198.18.0.0/15 (RFC 2544) and exist only in the
# namespaces made here. The filesystem is shared, as a cluster's is.
# Source it (as root), then:
#   cluster_up DIR N [PROFILE]  start vaen1..vaenN, DIR/hosts a hostfile of CLUSTER_SLOTS (2)
#                               slots each (PROFILE: none, 1gbe, 10gbe: the links' rate, by tc)
#   cluster_mpirun HOSTFILE ARGS...  mpirun over the nodes of HOSTFILE (rsh agent, TCP on the bridge)
#   cluster_node_pids I         PIDs of the processes inside node I
#   cluster_link I up|down      connect or cut off node I
#   cluster_down DIR            remove everything cluster_up made; safe to call twice
# Needs iproute2, util-linux (nsenter, unshare) and CAP_NET_ADMIN / CAP_SYS_ADMIN.
CLUSTER_BRIDGE=vaebr0
CLUSTER_NET=198.18.0
CLUSTER_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Can this machine make network namespaces at all? (CI containers without
# CAP_NET_ADMIN cannot: the tests then skip with this message.)
cluster_possible() {
    command -v ip >/dev/null && command -v nsenter >/dev/null || { echo "iproute2 or nsenter missing"; return 1; }
    ip netns add vaeprobe 2>/dev/null || { echo "cannot create network namespaces (needs root and CAP_NET_ADMIN)"; return 1; }
    ip netns del vaeprobe
}

# tc on the root side of node i's link: the rate of an interconnect class
# (token bucket; this machine's kernel has no netem, so no added latency).
cluster_shape() {
    local i=$1 profile=$2
    case $profile in
        none | "") ;;
        1gbe) tc qdisc add dev vaeveth$i root tbf rate 1gbit burst 256kb latency 50ms ;;
        10gbe) tc qdisc add dev vaeveth$i root tbf rate 10gbit burst 2mb latency 50ms ;;
        *) echo "unknown link profile '$profile' (none, 1gbe, 10gbe)"; return 1 ;;
    esac
}

cluster_up() {
    local dir=$1 n=$2 profile=${3:-none} i
    cluster_down "$dir" 2>/dev/null
    mkdir -p "$dir"
    echo "$n" >"$dir/nodes"
    ip link add $CLUSTER_BRIDGE type bridge || return 1
    ip addr add $CLUSTER_NET.1/24 dev $CLUSTER_BRIDGE
    ip link set $CLUSTER_BRIDGE up
    : >"$dir/hosts"
    for i in $(seq "$n"); do
        ip netns add vaen$i || return 1
        ip link add vaeveth$i type veth peer name eth0 netns vaen$i || return 1
        ip link set vaeveth$i master $CLUSTER_BRIDGE up
        ip -n vaen$i addr add $CLUSTER_NET.$((10 + i))/24 dev eth0
        ip -n vaen$i link set lo up
        ip -n vaen$i link set eth0 up
        cluster_shape "$i" "$profile" || return 1
        echo "$CLUSTER_NET.$((10 + i)) vaen$i # vae_dist simulated cluster" >>/etc/hosts
        echo "vaen$i slots=${CLUSTER_SLOTS:-2}" >>"$dir/hosts"
    done
}

cluster_mpirun() {
    "$CLUSTER_HERE/mpirun" "$@"
}

cluster_node_pids() {
    ip netns pids vaen"$1" 2>/dev/null
}

cluster_link() {
    ip link set vaeveth"$1" "$2"
}

cluster_down() {
    local dir=$1 i p
    for i in $(ip netns list 2>/dev/null | awk '/^vaen[0-9]+/ { sub("vaen", "", $1); print $1 }'); do
        for p in $(cluster_node_pids "$i"); do kill -9 "$p" 2>/dev/null; done
        ip link del vaeveth"$i" 2>/dev/null
        ip netns del vaen"$i" 2>/dev/null
    done
    ip link del $CLUSTER_BRIDGE 2>/dev/null
    sed -i '/# vae_dist simulated cluster$/d' /etc/hosts
    return 0
}

# Slurm on the cluster: slurmctld on the bridge address (its own hostname
# vaehead), one slurmd inside each node, in a mount namespace of its own with
# a private TmpFS (two slurmstepds must not share PMIx's directory). Exports
# SLURM_CONF. After cluster_up DIR N.
cluster_slurm_up() {
    local dir=$1 n i mem
    n=$(cat "$dir/nodes")
    . "$CLUSTER_HERE/../slurm/cluster.sh"
    munge_up || return 1
    mkdir -p "$dir"/{state,log,tmpfs}
    mem=$(($(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) / (2 * n)))
    cat >"$dir/slurm.conf" <<CONF
ClusterName=vaecluster
SlurmctldHost=vaehead($CLUSTER_NET.1)
$(slurm_conf_common 10)
TmpFS=$dir/tmpfs
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldPort=16827
SlurmdPort=16828
CONF
    for i in $(seq "$n"); do
        echo "NodeName=vaen$i NodeAddr=$CLUSTER_NET.$((10 + i)) CPUs=$(nproc) RealMemory=$mem State=UNKNOWN" >>"$dir/slurm.conf"
    done
    echo "PartitionName=cluster Nodes=vaen[1-$n] Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES" >>"$dir/slurm.conf"
    echo "$CLUSTER_NET.1 vaehead # vae_dist simulated cluster" >>/etc/hosts
    export SLURM_CONF=$dir/slurm.conf
    unshare --uts sh -c "hostname vaehead; exec slurmctld -c -i -f $SLURM_CONF" || return 1
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
    for i in $(seq "$n"); do
        mkdir -p "$dir/spool-vaen$i" "$dir/tmp-vaen$i"
        nsenter --net=/var/run/netns/vaen$i unshare --uts --mount --propagation private sh -c \
            "hostname vaen$i && mount --bind $dir/tmp-vaen$i $dir/tmpfs && exec slurmd -f $SLURM_CONF -N vaen$i" ||
            return 1
    done
    for _ in $(seq 300); do
        [ "$(sinfo -h -o '%t %D' 2>/dev/null | awk '$1 == "idle" { print $2 }')" = "$n" ] && return 0
        sleep 0.1
    done
    echo "the Slurm nodes did not all become idle:"; sinfo; tail -3 "$dir"/log/*.log
    return 1
}

cluster_slurm_down() {
    local dir=$1 f
    for f in "$dir"/slurmd-*.pid "$dir/slurmctld.pid"; do
        [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    sleep 0.5
    for f in "$dir"/slurmd-*.pid "$dir/slurmctld.pid"; do
        [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    return 0
}
