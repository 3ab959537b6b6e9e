"""colabmagic's installer on machines as users have them: an installed fuse 2, a broken third-party
apt source, a policy-rc.d of the machine's own.

These tests change this machine (Debian packages, an apt source) and put
everything back in a ``finally``: other tests use fuse3's fusermount3.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from colabmagic.errors import InstallError
from colabmagic.system import installer

APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "-o", "Dpkg::Use-Pty=0"]
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")


def apt(*args: str) -> None:
    result = subprocess.run(APT + list(args), capture_output=True, text=True, env=APT_ENV,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def installed(package: str) -> bool:
    return installer.is_installed(package)


@pytest.fixture
def fuse2_instead_of_fuse3() -> Iterator[None]:
    """The machine as Colab's and Kaggle's images have it: ``fuse`` (fuse 2) installed, no fuse3."""
    had = {p: installed(p) for p in ("fuse", "fuse3", "libfuse2")}
    try:
        apt("install", "--no-install-recommends", "fuse")  # conflicts with fuse3: apt removes it
        assert installed("fuse") and not installed("fuse3")
        yield
    finally:
        if had["fuse3"]:
            apt("install", "--no-install-recommends", "fuse3")
            if not had["fuse"]:
                apt("purge", "fuse")  # removed by fuse3's install; its leftover record goes too
        elif not had["fuse"]:
            apt("purge", "fuse")
        if not had["libfuse2"] and installed("libfuse2"):
            apt("purge", "libfuse2")
        assert {p: installed(p) for p in had} == had, "the machine's FUSE packages were not put back"


def test_an_installed_fuse2_is_kept_and_drive_sync_mounts_with_it(
        ip: Any, tmp_path: Path, fuse2_instead_of_fuse3: None) -> None:
    from colabmagic.services.drive import tracking

    remote, mp = tmp_path / "remote", tmp_path / "mnt"
    remote.mkdir()
    ip.cell(f"%config DriveMagics.remote = {str(remote)!r}")
    ip.cell(f"%config DriveMagics.mountpoint = {str(mp)!r}")
    ip.cell("%config DriveMagics.backend = 'rclone'")
    ip.cell("%config DriveMagics.write_back = '5m'")
    try:
        body = f"open({str(mp / 'result.bin')!r}, 'wb').write(b'fuse2' * 4096)"
        report = ip.cell("%%drive_sync\n" + body).value
        assert report.verified
        assert hashlib.sha256((remote / "result.bin").read_bytes()).hexdigest() == \
            hashlib.sha256(b"fuse2" * 4096).hexdigest()
        assert tracking.is_mounted(str(mp))
        # The image's fuse is still there; nothing swapped it for fuse3.
        assert installed("fuse") and not installed("fuse3")
    finally:
        ip.cell("%drive_sync --unmount", check=False)
        ip.cell("%colabmagic stop --all", check=False)
        if tracking.is_mounted(str(mp)):
            subprocess.run(["fusermount", "-u", "-z", str(mp)], capture_output=True)
        from colabmagic.services.drive import writers

        writers.unguard(str(mp))
        subprocess.run(["chattr", "-i", str(mp)], capture_output=True)


@pytest.fixture
def broken_apt_sources(tmp_path: Path) -> Iterator[List[str]]:
    """Two third-party sources that fail `apt-get update`: a closed loopback port (apt warns and
    goes on) and an archive without its index files (apt fails with exit code 100)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    empty = tmp_path / "empty-archive"
    (empty / "dists" / "bookworm").mkdir(parents=True)
    urls = [f"http://127.0.0.1:{closed.getsockname()[1]}/debian", f"file:{empty}"]
    listing = Path("/etc/apt/sources.list.d/colabmagic-test-broken.list")
    try:
        listing.write_text("".join(f"deb [trusted=yes] {url} bookworm main\n" for url in urls))
        yield urls
    finally:
        listing.unlink(missing_ok=True)
        closed.close()
        for leftover in Path("/var/lib/apt/lists").glob("*empty-archive*"):
            leftover.unlink()


def test_a_broken_apt_source_does_not_block_a_package_from_the_main_source(
        broken_apt_sources: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    had_hello = installed("hello")
    policy = installer.POLICY_RC_D
    policy_before = policy.read_bytes() if policy.exists() else None
    monkeypatch.setattr(installer, "STALE_LISTS", -1)  # lists count as stale: `apt-get update` runs
    try:
        if had_hello:
            apt("remove", "hello")
        assert installer.ensure_packages(["hello"]) == ["hello"]
        assert subprocess.run(["hello"], capture_output=True, text=True).stdout.strip() == "Hello, world!"
        # A package no source has: now the failing sources are named.
        with pytest.raises(InstallError) as caught:
            installer.ensure_packages(["colabmagic-no-such-package"])
        message = caught.value.message
        assert "no such Debian package: colabmagic-no-such-package" in message
        assert all(url in message for url in broken_apt_sources)
        # The machine's own policy-rc.d (or its absence) is as it was after the installs.
        assert (policy.read_bytes() if policy.exists() else None) == policy_before
        assert not installer._saved_path().exists()
    finally:
        if not had_hello and installed("hello"):
            apt("remove", "hello")


def test_an_install_starts_no_service_and_puts_the_machines_policy_rc_d_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "policy-rc.d"
    monkeypatch.setattr(installer, "POLICY_RC_D", policy)
    monkeypatch.setattr(installer, "POLICY_LOCK", tmp_path / "policy.lock")
    # No policy-rc.d before: one that forbids starts during the install, none after.
    with installer.services_held():
        assert subprocess.run([str(policy), "ssh", "start"]).returncode == 101
    assert not policy.exists()
    # The machine's own (Docker's, say): put back byte for byte, even when the install fails.
    own = "#!/bin/sh\n# the machine's own policy\nexit 0\n"
    policy.write_text(own)
    policy.chmod(0o750)
    with pytest.raises(RuntimeError):
        with installer.services_held():
            assert subprocess.run([str(policy), "ssh", "start"]).returncode == 101
            raise RuntimeError("apt failed")
    assert policy.read_text() == own and (policy.stat().st_mode & 0o777) == 0o750
    assert not installer._saved_path().exists()


def test_failing_sources_are_read_from_apt_2_and_apt_3_output() -> None:
    lines = [
        "Hit:1 http://deb.debian.org/debian bookworm InRelease",
        "Err:2 http://127.0.0.1:9/debian bookworm InRelease",  # apt 2.x
        "W: GPG error: https://cloud.r-project.org/bin/linux/ubuntu jammy-cran40/ InRelease: "
        "The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 51716619E084DAB9",
        "E: The repository 'https://cloud.r-project.org/bin/linux/ubuntu jammy-cran40/ InRelease' is not signed.",
        "Error: The repository 'https://ppa.launchpadcontent.net/deadsnakes/ppa/ubuntu jammy Release' "
        "does not have a Release file.",  # apt 3.0 wording
        "Warning: Failed to fetch http://r2u.stat.illinois.edu/ubuntu/dists/jammy/InRelease  Could not resolve host",
        "W: Some index files failed to download. They have been ignored, or old ones used instead.",
    ]
    assert installer._failed_sources(lines) == [
        "http://127.0.0.1:9/debian",
        "https://cloud.r-project.org/bin/linux/ubuntu",
        "https://ppa.launchpadcontent.net/deadsnakes/ppa/ubuntu",
        "http://r2u.stat.illinois.edu/ubuntu",
    ]


def test_a_newly_installed_openssh_server_is_not_enabled_at_boot() -> None:
    wants = Path("/etc/systemd/system/multi-user.target.wants/ssh.service")
    if not (Path("/lib/systemd/system/ssh.service").exists() and shutil.which("systemctl")):
        pytest.skip("no ssh.service unit or systemctl here")
    enabled_before = wants.is_symlink()
    try:
        subprocess.run(["systemctl", "enable", "--quiet", "ssh.service"], capture_output=True, check=True)
        assert wants.is_symlink()  # what openssh-server's postinst does on Debian and Ubuntu
        installer._disable_system_services(["openssh-server"])  # what ensure_packages runs after it
        assert not wants.is_symlink()
    finally:
        action = "enable" if enabled_before else "disable"
        subprocess.run(["systemctl", action, "--quiet", "ssh.service"], capture_output=True)
        assert wants.is_symlink() == enabled_before
