"""%vnc start on a machine without the VNC server and noVNC installs them through the product's installer."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from vnc_helpers import capture_until_xfce

from colabmagic.system import environment, installer

# Leaf packages only the desktop uses; the heavy XFCE set stays (chromium, a test tool, shares its libraries).
REMOVABLE = ["tigervnc-standalone-server", "tigervnc-tools", "xfce4-terminal", "novnc", "websockify"]


def _archive_reachable() -> bool:
    """Does the first archive apt really uses (not a commented-out one) answer on port 80 or 443?"""
    hosts = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if words and (words[0] in ("deb", "URIs:")):
                hosts += [urlsplit(w).hostname for w in words[1:] if w.startswith(("http://", "https://"))]
    for host in [h for h in hosts if h][:1]:
        for port in (80, 443):
            try:
                with socket.create_connection((host, port), timeout=5):
                    return True
            except OSError:
                continue
    return False


@pytest.mark.slow
def test_start_installs_what_is_missing(ip, display_number, tmp_path):
    if not environment.is_root():
        pytest.skip("installing Debian packages needs root")
    if not _archive_reachable():
        pytest.skip("the Debian archive is not reachable from here")
    installer.remove_packages(REMOVABLE)
    assert installer.missing(REMOVABLE) == REMOVABLE
    c = ip.cell(f"d = %vnc start --web --display :{display_number}")
    assert installer.missing(REMOVABLE) == []
    assert "installing the desktop's packages" in c.stdout
    desktop = ip.user_ns["d"]
    assert desktop.web_url
    capture_until_xfce(desktop.port, ip.user_ns["_colabmagic"].vnc.password.reveal(), tmp_path / "shot.png")
