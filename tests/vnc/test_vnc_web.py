"""%vnc start --web: a browser on loopback opens noVNC, logs in with the password and sees the desktop."""

from __future__ import annotations

import shutil
import time
import urllib.request

import pytest
from support.vnc_helpers import HeadlessChromium, capture_until_xfce, image_distance, xfce_problem

from colabmagic.system import procfs

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is a test-only tool (TEST_DEBS)")


def test_web_client_in_headless_chromium_shows_the_desktop(ip, display_number, tmp_path):
    c = ip.cell(f"d = %vnc start --web --display :{display_number} --geometry 1024x768")
    desktop = ip.user_ns["d"]
    assert desktop.web_url and desktop.web_url.startswith("http://127.0.0.1:")
    assert "ssh" in c.output or "ssh" in repr(desktop)
    web_port = int(desktop.web_url.split(":")[2].split("/")[0])
    # the web client listens on loopback only
    holder = procfs.port_holder(web_port)
    assert holder is not None and "websockify" in " ".join(holder[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/vnc.html", timeout=10) as resp:
        assert b"noVNC" in resp.read()

    password = ip.user_ns["_colabmagic"].vnc.password.reveal()
    reference = tmp_path / "vnc.png"
    capture_until_xfce(desktop.port, password, reference)

    browser = HeadlessChromium(tmp_path / "profile", 1024, 768)
    try:
        browser.call("Page.enable")
        browser.call("Emulation.setDeviceMetricsOverride", width=1024, height=768, deviceScaleFactor=1,
                     mobile=False)
        browser.call("Page.navigate",
                     url=f"http://127.0.0.1:{web_port}/vnc.html?autoconnect=1&resize=off&password={password}")
        connected = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if browser.evaluate("document.documentElement.classList.contains('noVNC_connected')"):
                connected = True
                break
            time.sleep(0.25)
        status = browser.evaluate("(document.getElementById('noVNC_status')||{}).textContent||''")
        assert connected, f"noVNC did not connect: {status!r}"
        # The canvas fills as framebuffer updates arrive: wait (bounded) until the page shows the desktop.
        shot = tmp_path / "browser.png"
        distance = 255.0
        problem = "not captured"
        while time.monotonic() < deadline + 30:
            browser.screenshot(shot)
            distance = image_distance(shot, reference)
            problem = xfce_problem(shot)
            if distance < 8 and not problem:
                break
            time.sleep(0.5)
        assert not problem, problem
        # (noVNC's own connect page is ~25 away from this desktop; the same desktop is ~1)
        assert distance < 8, f"the browser shows something else than the VNC desktop (distance {distance:.1f})"
        assert browser.evaluate("document.documentElement.classList.contains('noVNC_connected')")
        print(f"browser vs VNC capture distance: {distance:.2f}")
    finally:
        browser.close()
