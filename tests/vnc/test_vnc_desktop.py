"""%vnc start brings up a real XFCE desktop that a VNC client can log in to and see; screenshot shows it."""

from __future__ import annotations

import io
import stat
from pathlib import Path

from support.vnc_helpers import capture_until_xfce, image_distance, looks_like_xfce, rfb_capture

from colabmagic.system import secrets


def test_start_shows_xfce_desktop_to_a_vnc_client(ip, display_number, tmp_path, cm_home):
    c = ip.cell(f"d = %vnc start --display :{display_number} --geometry 1024x768")
    desktop = ip.user_ns["d"]
    assert desktop.display == f":{display_number}"
    assert desktop.port == 5900 + display_number
    assert desktop.status == "running" and desktop.pid
    password = ip.user_ns["_colabmagic"].vnc.password.reveal()
    assert 6 <= len(password) <= 8
    # the password is kept 0600 and is never shown unless asked for
    secret_file = secrets.secret_path("VNC_PASSWORD")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((cm_home / "vnc" / "passwd").stat().st_mode) == 0o600
    assert password not in c.output and password not in repr(desktop) and password not in desktop._repr_html_()
    for log in (cm_home / "logs").glob("*.log"):
        assert password not in log.read_text(errors="replace")

    shot = tmp_path / "client.png"
    capture_until_xfce(desktop.port, password, shot)
    from PIL import Image

    assert Image.open(shot).size == (1024, 768)

    c = ip.cell(f"%vnc screenshot --save {tmp_path / 'saved.png'}")
    from IPython.display import Image as IPImage

    assert isinstance(c.value, IPImage)
    data = c.value.data
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "saved.png").read_bytes() == data
    assert image_distance(io.BytesIO(data), shot) < 12

    c = ip.cell("%vnc password")
    assert password in c.stdout
    c = ip.cell("%vnc status")
    assert c.value.pid == desktop.pid and password not in c.output


def test_start_again_reuses_and_new_options_restart(ip, display_number, tmp_path):
    first = ip.cell(f"%vnc start --display :{display_number}").value
    again = ip.cell(f"%vnc start --display :{display_number}")
    assert "reused" in again.stdout
    assert again.value.pid == first.pid and again.value.session_pid == first.session_pid

    # A new password (Python API; never on a magic's line) takes effect on the running desktop.
    from colabmagic.services import vnc

    old_password = ip.user_ns["_colabmagic"].vnc.password.reveal()
    renewed = vnc.start(vnc.VncConfig(display=f":{display_number}"), password="n3wPass8",
                        announce=lambda _m: None)
    assert renewed.pid == first.pid
    code, _out = rfb_capture(renewed.port, old_password, tmp_path / "old.png")
    assert code != 0
    code, out = rfb_capture(renewed.port, "n3wPass8", tmp_path / "new.png")
    assert code == 0, out
    assert "n3wPass8" in ip.cell("%vnc password").stdout

    changed = ip.cell(f"%vnc start --display :{display_number} --geometry 800x600").value
    assert changed.pid != first.pid and changed.geometry == "800x600"
    shot = tmp_path / "small.png"
    capture_until_xfce(changed.port, ip.user_ns["_colabmagic"].vnc.password.reveal(), shot)
    from PIL import Image

    assert Image.open(shot).size == (800, 600)


def test_gpu_without_gpu_says_so_and_desktop_works(ip, display_number, tmp_path):
    c = ip.cell(f"%vnc start --display :{display_number} --gpu")
    assert "no NVIDIA GPU" in c.stdout and "desktop works" in c.stdout
    capture_until_xfce(c.value.port, ip.user_ns["_colabmagic"].vnc.password.reveal(), tmp_path / "gpu.png")
    png = tmp_path / "gpu-magic.png"
    png.write_bytes(ip.cell("%vnc screenshot").value.data)
    looks_like_xfce(png)


def test_python_api_without_ipython(display_number, tmp_path):
    from colabmagic.services import vnc

    desktop = vnc.start(vnc.VncConfig(display=f":{display_number}"), announce=lambda _m: None)
    assert vnc.current() is not None and vnc.current().pid == desktop.pid
    assert "********" in repr(desktop)
    capture_until_xfce(desktop.port, vnc.password().reveal(), tmp_path / "client.png")
    path = Path(tmp_path / "api.png")
    vnc.screenshot(save=str(path))
    looks_like_xfce(path)
    assert set(vnc.stop()) == {"vnc-xserver", "vnc-session"}
    assert vnc.current() is None
