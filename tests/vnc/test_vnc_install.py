"""%vnc start on a machine without the VNC server and noVNC installs them through the product's installer."""

from __future__ import annotations

import os
import subprocess

import pytest
from support.vnc_helpers import capture_until_xfce

from colabmagic.system import environment, installer

# Leaf packages only the desktop uses; the heavy XFCE set stays (chromium, a test tool, shares its libraries).
REMOVABLE = ["tigervnc-standalone-server", "tigervnc-tools", "xfce4-terminal", "novnc", "websockify"]


def _debs_in_apt_cache() -> bool:
    """Fetch the packages' .deb files into apt's cache first (apt's own download from the Debian
    registry, nothing else), so removing them can never leave this machine without them."""
    r = subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--reinstall", "--download-only", "--no-install-recommends", *REMOVABLE],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return r.returncode == 0


@pytest.mark.slow
def test_start_installs_what_is_missing(ip, display_number, tmp_path):
    if not environment.is_root():
        pytest.skip("installing Debian packages needs root")
    if not _debs_in_apt_cache():
        pytest.skip("apt could not fetch the packages from the Debian archive")
    installer.remove_packages(REMOVABLE)
    assert installer.missing(REMOVABLE) == REMOVABLE
    c = ip.cell(f"d = %vnc start --web --display :{display_number}")
    assert installer.missing(REMOVABLE) == []
    assert "installing the desktop's packages" in c.stdout
    desktop = ip.user_ns["d"]
    assert desktop.web_url
    capture_until_xfce(desktop.port, ip.user_ns["_colabmagic"].vnc.password.reveal(), tmp_path / "shot.png")
