#!/bin/sh
# Installs the Debian packages lunet needs that are missing (apt-get update first).
# slurm-wlm, munge, parallel and openssh-* serve the cluster specs (their daemons are
# started by tools/cluster/, never by systemd); dataset-fashion-mnist is the second
# real dataset; luarocks lets the rockspec spec run.
set -eu
PKGS="build-essential pkg-config liblua5.4-dev lua5.4 lua-filesystem lua-busted lua-cjson zlib1g-dev gnuplot-nox lua-check lua-ldoc cppcheck clang libclang-rt-14-dev valgrind
      slurm-wlm munge parallel openssh-server openssh-client dataset-fashion-mnist luarocks"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
