"""``%vnc start``: the release's TigerVNC and XFCE, seen by a real VNC client (vncdotool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matrix_helpers import package_version
from vnc_helpers import capture_until_xfce


def test_a_vnc_client_sees_the_xfce_desktop(ip: Any, desktop_home: Path, display_number: int,
                                            tmp_path: Path) -> None:
    c = ip.cell(f"d = %vnc start --display :{display_number} --geometry 1024x768")
    desktop = ip.user_ns["d"]
    assert desktop.status == "running" and desktop.port == 5900 + display_number
    password = ip.user_ns["_colabmagic"].vnc.password.reveal()
    assert password not in c.output
    shot = tmp_path / "desktop.png"
    # Not blank, with XFCE's panel drawn (vnc_helpers.looks_like_xfce).
    capture_until_xfce(desktop.port, password, shot, timeout=90)
    from PIL import Image

    assert Image.open(shot).size == (1024, 768)
    assert package_version("tigervnc-standalone-server") and package_version("xfce4-panel")
