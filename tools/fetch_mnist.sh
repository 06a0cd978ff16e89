#!/bin/sh
# fetch_mnist.sh DEST_DIR - put the four MNIST .gz files into DEST_DIR, verified.
#
# Files already present with the right SHA-256 are left alone; anything else is
# downloaded from the mirrors below, tried in order, into a temporary file that is
# renamed into place only after its checksum matches tools/mnist.sha256. So an
# interrupted or corrupted download never leaves a plausible-looking file behind.
#
# MNIST_MIRRORS (space-separated base URLs ending in /) replaces the mirror list,
# e.g. MNIST_MIRRORS="file:///data/mnist/" with curl for an offline copy.
#
# Offline it fails within seconds: one try per mirror with a short connect timeout,
# and when the first missing file comes from no mirror the others are not tried.
# Its last words say both ways on: `make mnist` with network access, or MNIST_DIR
# pointing at a directory that already has the four files.
set -eu

usage() {
    echo "usage: $0 DEST_DIR" >&2
    exit 2
}

[ "$#" -eq 1 ] || usage
[ -n "$1" ] || usage
dest=$1

script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
sums="$script_dir/mnist.sha256"
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
mirrors=${MNIST_MIRRORS:-"https://ossci-datasets.s3.amazonaws.com/mnist/ https://storage.googleapis.com/cvdf-datasets/mnist/ http://yann.lecun.com/exdb/mnist/"}

die() {
    echo "fetch_mnist: $*" >&2
    exit 1
}

# The two ways to get the data, said whenever downloading failed.
alternatives() {
    cat >&2 <<EOT
fetch_mnist: to get MNIST, either
  - run \`make mnist\` again on a machine with network access (MNIST_MIRRORS="URL/ ..." replaces
    the mirror list), or
  - if you already have the four *-ubyte.gz files, skip the download: set MNIST_DIR to their
    directory, e.g. export MNIST_DIR=/path/to/mnist (lunet.mnist and make report read it).
EOT
}

[ -r "$sums" ] || die "checksum list $sums is missing"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is required but not installed"
if command -v curl >/dev/null 2>&1; then
    downloader=curl
elif command -v wget >/dev/null 2>&1; then
    downloader=wget
else
    downloader=
fi

mkdir -p -- "$dest" || die "cannot create directory $dest"
[ -w "$dest" ] || die "directory $dest is not writable"

tmp=
cleanup() {
    if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# expected_sum NAME: the SHA-256 listed for NAME.
expected_sum() {
    awk -v name="$1" '$2 == name { print $1; found = 1 } END { exit !found }' "$sums"
}

# matches PATH NAME: PATH has the checksum listed for NAME (checked by sha256sum -c).
matches() {
    [ -f "$1" ] || return 1
    printf '%s  %s\n' "$(expected_sum "$2")" "$1" | sha256sum -c - >/dev/null 2>&1
}

# download URL PATH
download() {
    case $downloader in
    curl) curl -fsSL --connect-timeout 5 -o "$2" "$1" ;;
    wget) wget -q --tries=1 --dns-timeout=5 --connect-timeout=5 --read-timeout=30 -O "$2" "$1" ;;
    *) return 1 ;;
    esac
}

failed=
for name in $files; do
    target="$dest/$name"
    expected_sum "$name" >/dev/null || die "$sums lists no checksum for $name"
    if matches "$target" "$name"; then
        echo "fetch_mnist: $name: present, checksum OK"
        continue
    fi
    if [ -e "$target" ]; then
        echo "fetch_mnist: $name: present but the checksum does not match; downloading again" >&2
    fi
    if [ -z "$downloader" ]; then
        echo "fetch_mnist: $name: neither curl nor wget is installed, cannot download" >&2
        failed="$failed $name"
        break
    fi
    got=
    for base in $mirrors; do
        tmp="$dest/.$name.part.$$"
        rm -f -- "$tmp"
        echo "fetch_mnist: $name: downloading from $base"
        if ! download "$base$name" "$tmp"; then
            echo "fetch_mnist: $name: download from $base failed" >&2
        elif ! matches "$tmp" "$name"; then
            echo "fetch_mnist: $name: file from $base has the wrong checksum" >&2
        else
            mv -f -- "$tmp" "$target"
            tmp=
            got=1
            break
        fi
        rm -f -- "$tmp"
        tmp=
    done
    if [ -z "$got" ]; then
        echo "fetch_mnist: $name: every mirror failed" >&2
        failed="$failed $name"
        # the other files would fail the same way: stop here, quickly
        break
    fi
done

if [ -n "$failed" ]; then
    alternatives
    die "could not fetch:$failed (into $dest)"
fi

# Final word from sha256sum itself, over the whole list.
if ! (cd -- "$dest" && sha256sum -c "$sums"); then
    die "checksum verification failed in $dest"
fi
echo "fetch_mnist: all files present and verified in $dest"
