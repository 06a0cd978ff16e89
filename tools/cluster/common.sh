# shellcheck shell=sh
# Shell functions shared by slurm.sh and sshd.sh, sourced by both (POSIX sh). Before
# sourcing, a script sets PROG (its name in messages); it defines start, stop and status.

die() { echo "$PROG: $*" >&2; exit 1; }

# port_in_use PORT: does anything listen on TCP port PORT? (read in /proc/net/tcp*)
port_in_use() {
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" '$2 ~ p"$" { found = 1 } END { exit !found }'
}

# state_dir DIR ENV_NAME WHAT MARKER: sets DIR to the absolute path of DIR (for status and
# stop: the directory start made), which must hold MARKER, a file of this script's state.
# An empty DIR (no argument, ENV_NAME unset) asks for one.
state_dir() {
    DIR=$1
    [ -n "$DIR" ] || die "which $3? give its directory or set $2 (printed by start)"
    [ -e "$DIR/$4" ] || die "$DIR is not a directory of $PROG (no $4)"
    DIR=$(cd "$DIR" && pwd)
}

# remove_state KEEP WHAT: after stop, removes DIR, or keeps it when KEEP is 1
remove_state() {
    if [ "${1:-0}" = 1 ]; then echo "$PROG: stopped; $2 kept in $DIR"; else rm -rf "$DIR"; fi
}

# main "$@": the command line of both scripts
main() {
    case "${1:-}" in
        start|up) shift; start "$@" ;;
        stop|down) shift; stop "$@" ;;
        status) shift; status "$@" ;;
        *) echo "usage: $0 start [DIR] | status [DIR] | stop [DIR]" >&2; exit 2 ;;
    esac
}
