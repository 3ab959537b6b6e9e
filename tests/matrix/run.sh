#!/bin/bash
# The platform matrix: colabmagic's end-to-end tests inside Debian 11 and Debian 13 chroots.
#
#   tests/matrix/run.sh [RELEASE...]        default: bullseye trixie
#
# For each release: the cached root from rootfs.sh, an overlay on top of it (the run writes only
# to the overlay, so the cache stays clean), /proc, /sys, /dev (with /dev/pts), a tmpfs /run, the
# host's CA bundle and resolv.conf. In the chroot: a venv of the release's own Python, a newer pip,
# colabmagic from this source tree with its test extras, then tests/matrix/inside with
# COLABMAGIC_OFFLINE=1 and its own COLABMAGIC_HOME. colabmagic's installer puts each magic's
# packages in from the release's apt. On trixie, the host's OpenSSH 10 test
# (tests/tunnel/test_sshd_openssh10.py) then runs against the same root. Everything mounted is
# unmounted again (umount -R) on every exit, failures included.
#
# HOST_PYTEST (default .venv/bin/pytest) runs that host-side test; MATRIX_KEEP=1 keeps the overlay;
# MATRIX_K=EXPR runs only the inside tests pytest's -k EXPR selects.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
CACHE=${COLABMAGIC_MATRIX_CACHE:-/var/cache/colabmagic-matrix}
HOST_PYTEST=${HOST_PYTEST:-$src/.venv/bin/pytest}
releases=("$@")
[ ${#releases[@]} -gt 0 ] || releases=(bullseye trixie)
[ "$(id -u)" = 0 ] || { echo "run.sh: the matrix needs root (debootstrap, mount, chroot)" >&2; exit 1; }

work=""
merged=""

chroot_pids() {
    # Processes whose root is this run's chroot: only ever ones this run started.
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$merged" ] && echo "${p#/proc/}"
    done
}

cleanup() {
    [ -n "$merged" ] || return 0
    local pids
    pids=$(chroot_pids)
    if [ -n "$pids" ]; then
        kill $pids 2>/dev/null; sleep 2
        pids=$(chroot_pids); [ -z "$pids" ] || kill -9 $pids 2>/dev/null
    fi
    if mountpoint -q "$merged"; then
        umount -R "$merged" 2>/dev/null || umount -R -l "$merged"
    fi
    if [ "${MATRIX_KEEP:-0}" = 1 ]; then
        echo "matrix: kept $work" >&2
    else
        rm -rf --one-file-system "$work"
    fi
    merged=""; work=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_root() {
    chroot "$merged" /usr/bin/env -i PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$@"
}

mount_all() {
    local root=$1
    mkdir -p "$work/upper" "$work/work" "$merged"
    mount -t overlay overlay -o "lowerdir=$root,upperdir=$work/upper,workdir=$work/work" "$merged"
    mount -t proc proc "$merged/proc"
    mount --rbind /sys "$merged/sys" && mount --make-rslave "$merged/sys"
    # rslave: unmounting the chroot's copy of /dev never reaches this machine's /dev/pts or /dev/shm.
    mount --rbind /dev "$merged/dev" && mount --make-rslave "$merged/dev"
    mountpoint -q "$merged/dev/pts" || mount --bind /dev/pts "$merged/dev/pts"
    mount -t tmpfs -o mode=0755 tmpfs "$merged/run"
    # Caches shared by runs: pip's wheels and apt's .deb files (downloads only, never state).
    mkdir -p "$CACHE/pip" "$CACHE/apt-$release/partial" "$merged/root/.cache/pip"
    mount --bind "$CACHE/pip" "$merged/root/.cache/pip"
    mount --bind "$CACHE/apt-$release" "$merged/var/cache/apt/archives"
    # This machine's CA bundle: pip there (PIP_CERT, below) trusts what pip here trusts.
    cp /etc/ssl/certs/ca-certificates.crt "$merged/etc/ssl/certs/ca-certificates.crt"
    rm -f "$merged/etc/resolv.conf" && cp -L /etc/resolv.conf "$merged/etc/resolv.conf"
}

declare -A summary
status=0
for release in "${releases[@]}"; do
    started=$SECONDS
    echo "=== matrix: $release ===" >&2
    root=$("$here/rootfs.sh" "$release") || { summary[$release]="FAILED: could not build the root"; status=1; continue; }
    work=$(mktemp -d "$CACHE/run-$release-XXXXXX")
    merged="$work/root"
    if ! mount_all "$root"; then
        summary[$release]="FAILED: could not mount the root"; status=1; cleanup; continue
    fi
    # This source tree, without venvs or git (a copy: the build writes into it).
    mkdir -p "$merged/opt/colabmagic"
    tar -C "$src" --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache -cf - . \
        | tar -C "$merged/opt/colabmagic" -xf -
    log="$work/pip.log"
    prepared=$SECONDS
    if ! { in_root python3 -m venv /opt/venv &&
           in_root /opt/venv/bin/python -m pip install -q --upgrade pip &&
           in_root /opt/venv/bin/python -m pip install -q '/opt/colabmagic[test]'; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        summary[$release]="FAILED: pip could not install colabmagic"; status=1; cleanup; continue
    fi
    echo "matrix: $release: colabmagic installed with pip in $((SECONDS - prepared)) s" >&2
    in_root env COLABMAGIC_OFFLINE=1 COLABMAGIC_HOME=/root/colabmagic-home COLABMAGIC_MATRIX_INSIDE=1 \
        /opt/venv/bin/pytest -p no:cacheprovider -q -rA --durations=5 --rootdir /opt/colabmagic \
        ${MATRIX_K:+-k "$MATRIX_K"} /opt/colabmagic/tests/matrix/inside 2>&1 | tee "$work/pytest.log" >&2
    code=${PIPESTATUS[0]}
    passed=$(grep -oE '^PASSED [^ ]+' "$work/pytest.log" | sed -e 's/^PASSED .*:://' | tr '\n' ' ')
    failed=$(grep -oE '^(FAILED|ERROR) [^ ]+' "$work/pytest.log" | sed -e 's/^[A-Z]* .*:://' | tr '\n' ' ')
    [ "$code" = 0 ] && [ -n "$passed" ] || status=1
    if [ "$release" = trixie ] && [ -x "$HOST_PYTEST" ]; then
        # OpenSSH 10's PerSourcePenalties, from this machine's side, with the sshd colabmagic installed above.
        COLABMAGIC_TEST_TRIXIE_ROOT="$merged" "$HOST_PYTEST" -p no:cacheprovider -q -rA \
            "$src/tests/tunnel/test_sshd_openssh10.py" 2>&1 | tee "$work/openssh10.log" >&2
        name=test_owner_still_logs_in_after_20_failed_logins_on_openssh_10
        if [ "${PIPESTATUS[0]}" = 0 ] && grep -q '^PASSED' "$work/openssh10.log"; then
            passed="$passed$name (host side) "
        else
            failed="$failed$name (host side) "; status=1
        fi
    fi
    line="passed: ${passed:-none}${failed:+; FAILED: $failed}"
    versions=$(in_root /opt/venv/bin/python /opt/colabmagic/tests/matrix/versions.py 2>&1)
    summary[$release]="$line (in $((SECONDS - started)) s)
    versions: $versions"
    cleanup
done

echo
echo "Platform matrix:"
for release in "${releases[@]}"; do
    echo "  $release: ${summary[$release]:-not run}"
done
exit $status
