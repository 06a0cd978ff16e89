#!/bin/sh
# A one-node Slurm cluster on this host, for the cluster specs and for trying
# `bin/lunet sweep slurm` without a real cluster. Runs munged, slurmctld and slurmd as
# root, without systemd; every file they use (munge key and socket, slurm.conf, state,
# spool, logs, pid files) lives in one temporary directory.
#
#   tools/cluster/slurm.sh start [DIR]   start (DIR: state directory, default a new
#                                        mktemp -d); prints the environment to eval:
#                                        SLURM_CONF=DIR/slurm.conf, LUNET_SLURM_DIR=DIR
#   tools/cluster/slurm.sh status [DIR]  daemons alive? and sinfo
#   tools/cluster/slurm.sh stop [DIR]    cancel the jobs, kill every daemon it started
#                                        (by the pids it recorded), remove DIR
#   eval "$(tools/cluster/slurm.sh start)"; sbatch --wrap hostname; ...; tools/cluster/slurm.sh stop
#
# DIR defaults to $LUNET_SLURM_DIR for status and stop.
# LUNET_SLURM_MAX_ARRAY (default 1001, Slurm's default) sets MaxArraySize, so that
# splitting large arrays can be tried on a small scale. LUNET_SLURM_KEEP=1: stop keeps DIR.
# One node, this host: CPUs = nproc, RealMemory from /proc/meminfo; select/cons_tres,
# proctrack/linuxproc, task/none, no accounting, batch_sched_delay=0.
# The daemons talk over 127.0.0.1 on two free ports; munged only over its socket in DIR.
set -eu

PROG=slurm.sh
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

need_tools() {
    missing=""
    for t in munged slurmctld slurmd sinfo scontrol squeue scancel sbatch; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    if [ -n "$missing" ]; then
        die "missing:$missing (Debian packages slurm-wlm, slurm-client and munge: run \`make deps\`)"
    fi
    if [ "$(id -u)" -ne 0 ]; then
        die "the daemons must run as root (slurmd starts jobs as their users); run as root"
    fi
}

# A TCP port nobody listens on (checked in /proc/net/tcp*; the daemons fail clearly if
# another process takes it in between).
free_port() {
    avoid=${1:-0}
    i=0
    while [ $i -lt 200 ]; do
        p=$(( ($(od -An -N2 -tu2 /dev/urandom) % 30000) + 20000 ))
        if [ "$p" -ne "$avoid" ] && ! port_in_use "$p"; then echo "$p"; return 0; fi
        i=$((i + 1))
    done
    die "no free TCP port found"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# pid recorded at start, only if that process still runs the daemon it was
pid_of() {
    f="$DIR/pids/$1"
    [ -f "$f" ] || return 0
    p=$(cat "$f")
    if alive "$p" && grep -q "$1" "/proc/$p/comm" 2>/dev/null; then echo "$p"; fi
}

start() {
    need_tools
    if [ -n "${1:-}" ]; then
        DIR=$1
        mkdir -p "$DIR"
    else
        DIR=$(mktemp -d "${TMPDIR:-/tmp}/lunet-slurm.XXXXXX")
    fi
    DIR=$(cd "$DIR" && pwd)
    if [ -d "$DIR/pids" ] && [ -n "$(pid_of munged)$(pid_of slurmctld)$(pid_of slurmd)" ]; then
        die "a cluster already runs in $DIR (stop it first)"
    fi
    chmod 700 "$DIR"
    mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/pids"
    chmod 700 "$DIR/munge"
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 2>/dev/null
    chmod 400 "$DIR/munge/munge.key"

    cpus=$(nproc)
    mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
    ctl_port=$(free_port)
    d_port=$(free_port "$ctl_port")
    node=lunet-node
    cat >"$DIR/slurm.conf" <<CONF
# written by tools/cluster/slurm.sh: a one-node cluster on this host, state in $DIR
ClusterName=lunet
SlurmctldHost=$(hostname)(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/state/slurmctld.pid
SlurmdPidFile=$DIR/spool/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MaxArraySize=${LUNET_SLURM_MAX_ARRAY:-1001}
KillWait=5
MinJobAge=300
NodeName=$node NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=lunet Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

    # The daemons run in the foreground, each in its own session, so that $! is the
    # daemon itself; LUNET_SLURM_DAEMON_DIR marks them and the slurmstepd they start.
    export LUNET_SLURM_DAEMON_DIR="$DIR"
    setsid munged -F -f --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munged.seed" \
        --log-file="$DIR/log/munged.log" </dev/null >>"$DIR/log/munged.out" 2>&1 &
    echo $! >"$DIR/pids/munged"
    wait_for "munged socket" 10 test -S "$DIR/munge/munge.socket"

    export SLURM_CONF="$DIR/slurm.conf"
    setsid slurmctld -D -i </dev/null >>"$DIR/log/slurmctld.out" 2>&1 &
    echo $! >"$DIR/pids/slurmctld"
    setsid slurmd -D -N "$node" </dev/null >>"$DIR/log/slurmd.out" 2>&1 &
    echo $! >"$DIR/pids/slurmd"
    unset LUNET_SLURM_DAEMON_DIR

    wait_for "node $node idle" 30 node_idle "$node"
    echo "SLURM_CONF=$DIR/slurm.conf; export SLURM_CONF"
    echo "LUNET_SLURM_DIR=$DIR; export LUNET_SLURM_DIR"
}

node_idle() {
    for n in munged slurmctld slurmd; do
        alive "$(cat "$DIR/pids/$n" 2>/dev/null)" || { echo "slurm.sh: $n exited; its log: $DIR/log/$n.log $DIR/log/$n.out" >&2; tail -n 5 "$DIR/log/$n".* >&2 || true; return 2; }
        # alive but not yet the daemon (still the shell or setsid before its exec, which a
        # loaded machine can take a while to reach): not ready yet, not a failure
        [ -n "$(pid_of $n)" ] || return 1
    done
    sinfo -h -n "$1" -o '%t' 2>/dev/null | grep -qx idle
}

# wait_for WHAT SECONDS COMMAND...: polls every 0.1 s; status 2 of COMMAND is fatal
wait_for() {
    what=$1 limit=$2
    shift 2
    i=0
    while [ $i -lt $((limit * 10)) ]; do
        rc=0
        "$@" || rc=$?
        [ $rc -eq 0 ] && return 0
        if [ $rc -eq 2 ]; then stop_daemons; die "start failed (state kept in $DIR)"; fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "slurm.sh: timed out after ${limit} s waiting for $what; logs in $DIR/log" >&2
    stop_daemons
    die "start failed (state kept in $DIR)"
}


# Processes started by this cluster's daemons (slurmstepd) carry LUNET_SLURM_DAEMON_DIR.
marked_pids() {
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}
        p=${p%/environ}
        [ "$p" = "$$" ] && continue
        if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF "LUNET_SLURM_DAEMON_DIR=$DIR"; then echo "$p"; fi
    done
}

# signal_daemons SIG: each daemon still running, by its recorded pid
signal_daemons() {
    for n in slurmd slurmctld munged; do
        p=$(pid_of $n)
        if [ -n "$p" ]; then kill -"$1" "$p" 2>/dev/null || true; fi
    done
}

stop_daemons() {
    # jobs first, while slurmctld can still end them (their processes go with their steps)
    if [ -n "$(pid_of slurmctld)" ]; then
        SLURM_CONF="$DIR/slurm.conf" scancel --quiet --user=root 2>/dev/null || true
        i=0
        while [ $i -lt 50 ] && [ -n "$(SLURM_CONF="$DIR/slurm.conf" squeue -h -t running,completing -o %i 2>/dev/null)" ]; do
            sleep 0.1
            i=$((i + 1))
        done
    fi
    signal_daemons TERM
    i=0
    while [ $i -lt 50 ]; do
        [ -z "$(pid_of slurmd)$(pid_of slurmctld)$(pid_of munged)" ] && break
        sleep 0.1
        i=$((i + 1))
    done
    signal_daemons KILL
    for p in $(marked_pids); do kill -KILL "$p" 2>/dev/null || true; done
    rm -f "$DIR/pids/slurmd" "$DIR/pids/slurmctld" "$DIR/pids/munged"
}

# the state directory: the argument, else $LUNET_SLURM_DIR
find_dir() { state_dir "${1:-${LUNET_SLURM_DIR:-}}" LUNET_SLURM_DIR cluster pids; }

stop() {
    find_dir "${1:-}"
    stop_daemons
    remove_state "${LUNET_SLURM_KEEP:-0}" state
}

status() {
    find_dir "${1:-}"
    rc=0
    for n in munged slurmctld slurmd; do
        p=$(pid_of $n)
        if [ -n "$p" ]; then echo "$n: running, pid $p"; else echo "$n: not running"; rc=1; fi
    done
    [ $rc -eq 0 ] && SLURM_CONF="$DIR/slurm.conf" sinfo
    return $rc
}

main "$@"
