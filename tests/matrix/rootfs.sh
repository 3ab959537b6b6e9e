#!/bin/bash
# Build (or reuse) a minimal Debian root file system for the platform matrix; print its path.
#
#   tests/matrix/rootfs.sh RELEASE        e.g. bullseye, trixie
#
# debootstrap --variant=minbase from the Debian mirror this machine's apt already uses (read from
# /etc/apt/sources.list and the deb822 .sources files). Only what pip and the tests themselves need
# is included: colabmagic's own packages (openssh-server, aria2, rclone, fuse3, tigervnc, xfce4)
# come later from the root's own apt, through colabmagic's installer, in each run's overlay.
#
# A built root is kept at /var/cache/colabmagic-matrix/RELEASE-HASH, HASH covering this script
# (and so the package list): a fresh machine builds it, later runs reuse it, and a changed
# script builds a new one. It is built in a temporary folder and renamed into place, so an
# interrupted build never leaves a half-made root behind. Runs never write into it (run.sh
# mounts an overlay on top).
set -euo pipefail

release=${1:?usage: rootfs.sh RELEASE}
CACHE=${COLABMAGIC_MATRIX_CACHE:-/var/cache/colabmagic-matrix}
# Test-only packages: Python and venv for pip, CAs, the ssh client the login test uses, ps.
INCLUDE=python3,python3-venv,ca-certificates,openssh-client,procps

hash=$(sha256sum "$0" | cut -c1-12)
final="$CACHE/$release-$hash"
mkdir -p "$CACHE"
exec 9>"$CACHE/.$release.lock"
flock 9  # two builds of one release wait for each other instead of racing

if [ -e "$final/.complete" ]; then
    echo "$final"
    exit 0
fi

mirror() {
    # The first Debian archive URI (not debian-security) in this machine's apt sources.
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed -e 's/#.*//' "$f" | grep -oE '(https?)://[^ ]+' || true
    done | grep -E '/debian/?$' | head -n1
}
MIRROR=${COLABMAGIC_MATRIX_MIRROR:-$(mirror)}
[ -n "$MIRROR" ] || { echo "rootfs.sh: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }

if ! command -v debootstrap >/dev/null; then
    echo "rootfs.sh: installing debootstrap (a test-only tool)" >&2
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
fi

build=$(mktemp -d "$CACHE/.build-$release-XXXXXX")
trap 'rm -rf --one-file-system "$build"' EXIT
echo "rootfs.sh: debootstrap $release from $MIRROR (a few minutes, once)" >&2
started=$SECONDS
debootstrap --variant=minbase --include="$INCLUDE" "$release" "$build" "$MIRROR" >"$build.log" 2>&1 || {
    tail -n 30 "$build.log" >&2; rm -f "$build.log"; exit 1; }
rm -f "$build.log"
echo "deb $MIRROR $release main" >"$build/etc/apt/sources.list"
rm -rf "$build"/var/cache/apt/archives/*.deb "$build"/var/lib/apt/lists/*
echo "rootfs.sh: $release built in $((SECONDS - started)) s" >&2
touch "$build/.complete"
mv -T "$build" "$final"
trap - EXIT
# Older roots of this release (an earlier version of this script) are no longer used.
for old in "$CACHE/$release"-*; do
    [ "$old" = "$final" ] || [ ! -d "$old" ] || rm -rf --one-file-system "$old"
done
echo "$final"
