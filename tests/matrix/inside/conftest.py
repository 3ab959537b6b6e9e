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
from pathlib import Path
from typing import Dict, Iterator

import pytest
from support.displays import free_display


@pytest.fixture
def matrix_display_number() -> int:
    return free_display()


@pytest.fixture
def matrix_desktop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
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
