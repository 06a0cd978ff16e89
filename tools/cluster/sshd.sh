#!/bin/sh
# An sshd on 127.0.0.1 only, for trying `bin/lunet sweep parallel --sshloginfile` with
# "several hosts" on one machine, and for the cluster specs. Everything lives in one
# temporary directory: its own sshd_config, host key, a user key (root may log in with
# that key only), an ssh config with two host aliases of 127.0.0.1, and a GNU parallel
# --sshloginfile naming both.
#
#   tools/cluster/sshd.sh start [DIR]   prints the environment to eval:
#                                       LUNET_SSHD_DIR=DIR, LUNET_SSH_CONFIG=DIR/ssh_config,
#                                       LUNET_SSHLOGINFILE=DIR/sshloginfile
#   tools/cluster/sshd.sh status [DIR]  is it running? can each alias log in?
#   tools/cluster/sshd.sh stop [DIR]    kill that sshd (by its pid) and remove DIR
#
#   eval "$(tools/cluster/sshd.sh start)"
#   parallel --sshloginfile "$LUNET_SSHLOGINFILE" hostname ::: 1 2 3 4
#   ssh -F "$LUNET_SSH_CONFIG" lunet-a true
#
# DIR defaults to $LUNET_SSHD_DIR for status and stop; LUNET_SSHD_KEEP=1: stop keeps DIR.
# The host aliases are lunet-a and lunet-b (LUNET_SSH_HOSTS overrides: a list of names).
set -eu

PROG=sshd.sh
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

SSHD=/usr/sbin/sshd          # sshd must be started by its absolute path
HOSTS=${LUNET_SSH_HOSTS:-lunet-a lunet-b}

alive_sshd() {
    f="$DIR/sshd.pid.started"
    [ -f "$f" ] || return 1
    p=$(cat "$f")
    kill -0 "$p" 2>/dev/null && grep -q sshd "/proc/$p/comm" 2>/dev/null && echo "$p"
}

start() {
    missing=""
    [ -x "$SSHD" ] || missing="$missing $SSHD (openssh-server)"
    for t in ssh ssh-keygen; do command -v "$t" >/dev/null 2>&1 || missing="$missing $t (openssh-client)"; done
    [ -z "$missing" ] || die "missing:$missing; run \`make deps\`"
    [ "$(id -u)" -eq 0 ] || die "must run as root (the test logins are root's, with the key made here)"
    if [ -n "${1:-}" ]; then DIR=$1; mkdir -p "$DIR"; else DIR=$(mktemp -d "${TMPDIR:-/tmp}/lunet-sshd.XXXXXX"); fi
    DIR=$(cd "$DIR" && pwd)
    if alive_sshd >/dev/null; then die "an sshd already runs for $DIR (stop it first)"; fi
    chmod 700 "$DIR"
    rm -f "$DIR/host_key" "$DIR/host_key.pub" "$DIR/user_key" "$DIR/user_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C lunet-sshd-host -f "$DIR/host_key"
    ssh-keygen -q -t ed25519 -N '' -C lunet-sshd-user -f "$DIR/user_key"
    cp "$DIR/user_key.pub" "$DIR/authorized_keys"
    chmod 600 "$DIR/authorized_keys"
    # privilege separation needs this empty directory (compiled in; the Debian service
    # creates it at boot)
    [ -d /run/sshd ] || mkdir -p -m 755 /run/sshd

    tries=0
    while :; do
        tries=$((tries + 1))
        [ $tries -le 20 ] || die "could not start sshd on a free port (log: $DIR/sshd.log)"
        port=$(( ($(od -An -N2 -tu2 /dev/urandom) % 30000) + 20000 ))
        port_in_use "$port" && continue
        cat >"$DIR/sshd_config" <<CONF
# written by tools/cluster/sshd.sh: loopback only, root with the key in $DIR only
ListenAddress 127.0.0.1:$port
HostKey $DIR/host_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PermitUserEnvironment no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
LogLevel INFO
CONF
        "$SSHD" -t -f "$DIR/sshd_config" || die "sshd rejects its config ($DIR/sshd_config)"
        setsid "$SSHD" -D -e -f "$DIR/sshd_config" </dev/null >>"$DIR/sshd.log" 2>&1 &
        echo $! >"$DIR/sshd.pid.started"
        i=0
        while [ $i -lt 50 ] && alive_sshd >/dev/null && ! port_in_use "$port"; do sleep 0.1; i=$((i + 1)); done
        if alive_sshd >/dev/null && port_in_use "$port"; then break; fi
        p=$(alive_sshd || true)
        [ -n "$p" ] && kill "$p" 2>/dev/null
        rm -f "$DIR/sshd.pid.started"
    done

    echo "lunet-sshd $(cut -d' ' -f1-2 "$DIR/host_key.pub")" >"$DIR/known_hosts"
    : >"$DIR/ssh_config"
    : >"$DIR/sshloginfile"
    for h in $HOSTS; do
        cat >>"$DIR/ssh_config" <<CONF
Host $h
    HostName 127.0.0.1
    Port $port
    User root
    IdentityFile $DIR/user_key
    IdentitiesOnly yes
    HostKeyAlias lunet-sshd
    UserKnownHostsFile $DIR/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    LogLevel ERROR
CONF
        # "ncpus/ssh command": GNU parallel runs this command with the job appended
        echo "1/ssh -F $DIR/ssh_config $h" >>"$DIR/sshloginfile"
    done
    for h in $HOSTS; do
        ssh -F "$DIR/ssh_config" "$h" true || { stop_sshd; die "cannot log in to $h (log: $DIR/sshd.log)"; }
    done
    echo "LUNET_SSHD_DIR=$DIR; export LUNET_SSHD_DIR"
    echo "LUNET_SSH_CONFIG=$DIR/ssh_config; export LUNET_SSH_CONFIG"
    echo "LUNET_SSHLOGINFILE=$DIR/sshloginfile; export LUNET_SSHLOGINFILE"
}

stop_sshd() {
    p=$(alive_sshd || true)
    [ -n "$p" ] || return 0
    # the listener; the sessions it forked end when their clients do, or go with it
    kill -TERM "$p" 2>/dev/null || true
    i=0
    while [ $i -lt 30 ] && kill -0 "$p" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null || true
    rm -f "$DIR/sshd.pid.started"
}

# the state directory: the argument, else $LUNET_SSHD_DIR
find_dir() { state_dir "${1:-${LUNET_SSHD_DIR:-}}" LUNET_SSHD_DIR sshd sshd_config; }

stop() {
    find_dir "${1:-}"
    stop_sshd
    remove_state "${LUNET_SSHD_KEEP:-0}" files
}

status() {
    find_dir "${1:-}"
    p=$(alive_sshd || true)
    [ -n "$p" ] || { echo "sshd: not running"; return 1; }
    echo "sshd: running, pid $p, $(grep '^ListenAddress' "$DIR/sshd_config")"
    for h in $HOSTS; do
        if ssh -F "$DIR/ssh_config" "$h" true; then echo "$h: login ok"; else echo "$h: login FAILED"; fi
    done
}

main "$@"
