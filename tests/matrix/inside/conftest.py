"""Fixtures for the platform matrix's end-to-end tests, run inside a Debian chroot by run.sh.

colabmagic here is the pip-installed one in the release's own Python; every
Debian package a magic needs comes from the release's apt through
colabmagic's installer. The shared fixtures (``ip``, ``relay``,
``client_key``, ``ssh_login``, ``safe_home``) are tests/conftest.py's.
The chroot shares this machine's loopback, abstract sockets and /dev/fuse,
so X displays are chosen from :20 up (never a host test's :1) and free
on both sides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest

TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TESTS / "vnc"))  # vnc_helpers: the independent VNC client checks


def _display_free(number: int) -> bool:
    abstract = f"@/tmp/.X11-unix/X{number}"
    unix = Path("/proc/net/unix").read_text()
    from colabmagic.system import probes

    return (not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists()
            and abstract not in unix and not probes.port_open(5900 + number)
            and not probes.port_open(6000 + number))


@pytest.fixture
def display_number() -> int:
    for number in range(20 + os.getpid() % 40, 99):
        if _display_free(number):
            return number
    pytest.fail("no free X display between :20 and :98")


@pytest.fixture
def desktop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh $HOME for the desktop (XFCE's first-run set-up); the desktop stopped after."""
    home = tmp_path / "desktop-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("VNC_PASSWORD", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    yield home
    from colabmagic.services import vnc

    vnc.stop()


@pytest.fixture
def drive_env(tmp_path: Path) -> Iterator[Dict[str, Path]]:
    """A local folder as the rclone remote and an empty mountpoint; unmounted and unguarded after."""
    remote, mountpoint = tmp_path / "remote", tmp_path / "drive"
    remote.mkdir()
    yield {"remote": remote, "mountpoint": mountpoint}
    from colabmagic.services.drive import tracking, writers
    from colabmagic.system import supervisor

    svc = supervisor.adopt("drive-rclone")
    if svc is not None:
        svc.stop()
    for _ in range(3):
        if not tracking.is_mounted(str(mountpoint)):
            break
        for tool in ("fusermount3", "fusermount"):
            if shutil.which(tool):
                subprocess.run([tool, "-u", "-z", str(mountpoint)], capture_output=True)
        if tracking.is_mounted(str(mountpoint)):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
    writers.unguard(str(mountpoint))
    if mountpoint.exists():
        chattr = shutil.which("chattr")  # Debian 13's minbase has no e2fsprogs
        if chattr:
            subprocess.run([chattr, "-i", str(mountpoint)], capture_output=True)
        os.chmod(mountpoint, 0o755)
