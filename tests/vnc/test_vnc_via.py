"""--via PROVIDER: the noVNC page and its WebSocket through a tunnel (cloudflared stand-in), the VNC
port itself through a tcp tunnel (frps/frpc stand-ins), and a provider that cannot work here is
refused before anything starts.

The cloudflared stand-in (tests/standins) speaks cloudflared's command line,
log lines and metrics API and really carries the traffic: its "edge" is a
TLS listener on 127.0.0.1 registered under the quick-tunnel host name. The
browser reaches that host name through a host-resolver rule, as a user's
browser reaches trycloudflare.com through DNS.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from standins import _edge
from support.vnc_helpers import HeadlessChromium, capture_until_xfce, image_distance, xfce_problem

from colabmagic.system import secrets, supervisor

STANDINS = Path(__file__).resolve().parents[1] / "standins"


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is a test-only tool (TEST_DEBS)")
def test_web_desktop_through_a_cloudflared_tunnel_in_a_browser(ip, display_number, edge, tmp_path):
    ip.cell(f"%config TunnelMagics.cloudflared_path = '{STANDINS / 'cloudflared'}'")
    c = ip.cell(f"d = %vnc start --web --via cloudflared --display :{display_number} --geometry 1024x768")
    desktop = ip.user_ns["d"]
    url = urlsplit(desktop.public_url)
    assert url.scheme == "https" and url.hostname.endswith(".trycloudflare.com"), desktop.public_url
    assert url.path == "/vnc.html"
    assert desktop.public_url in c.output or desktop.public_url in repr(desktop)
    assert "vnc" in ip.user_ns["_colabmagic"].tunnels

    password = ip.user_ns["_colabmagic"].vnc.password.reveal()
    reference = tmp_path / "vnc.png"
    capture_until_xfce(desktop.port, password, reference)

    _host, edge_port = _edge.resolve(f"{url.hostname}:443")
    browser = HeadlessChromium(tmp_path / "profile", 1024, 768,
                               extra=[f"--host-resolver-rules=MAP {url.hostname}:443 127.0.0.1:{edge_port}",
                                      "--ignore-certificate-errors"])
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=1024, height=768, deviceScaleFactor=1,
                     mobile=False)
        browser.call("Page.navigate", url=desktop.public_url.replace("resize=remote", "resize=off")
                     + f"&password={password}")
        deadline = time.monotonic() + 60
        connected = False
        while time.monotonic() < deadline and not connected:
            connected = bool(browser.evaluate("document.documentElement.classList.contains('noVNC_connected')"))
            time.sleep(0.25)
        status = browser.evaluate("(document.getElementById('noVNC_status')||{}).textContent||''")
        assert connected, f"noVNC did not connect through the tunnel: {status!r}"
        shot = tmp_path / "browser.png"
        distance, problem = 255.0, "not captured"
        while time.monotonic() < deadline + 30:
            browser.screenshot(shot)
            distance, problem = image_distance(shot, reference), xfce_problem(shot)
            if distance < 8 and not problem:
                break
            time.sleep(0.5)
        assert not problem and distance < 8, (problem, distance)
    finally:
        browser.close()
    ip.cell("%vnc stop")
    assert "vnc" not in ip.user_ns["_colabmagic"].tunnels
    assert supervisor.running() == []


def test_a_provider_that_cannot_work_here_is_refused_before_anything_starts(ip, display_number, monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("COLAB_BACKEND_VERSION", raising=False)
    monkeypatch.delenv("TBE_EPHEM_CREDS_ADDR", raising=False)
    c = ip.cell(f"%vnc start --web --via colab --display :{display_number}", check=False)
    assert c.error is not None and "only on hosted Colab" in str(c.error)
    c = ip.cell(f"%vnc start --web --via nosuchprovider --display :{display_number}", check=False)
    assert c.error is not None and "nosuchprovider" in str(c.error)
    assert supervisor.running() == []
    assert not secrets.secret_path("VNC_PASSWORD").exists()


def test_vnc_port_through_an_frp_tcp_tunnel_serves_a_vnc_client(ip, display_number, edge, frps, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("FRP_TOKEN", frps.token)
    ip.cell(f"%config TunnelMagics.frpc_path = '{STANDINS / 'frpc'}'")
    ip.cell(f"%config TunnelMagics.frp_server = '{frps.server}'")
    # raw RFB through frp crosses the internet in clear: refused unless --insecure, which says why
    refused = ip.cell(f"%vnc start --via frp --display :{display_number}", check=False)
    assert refused.error is not None and "--insecure" in str(refused.error)
    started = ip.cell(f"%vnc start --via frp --insecure --display :{display_number}")
    assert "in clear" in started.stdout
    desktop = started.value
    tunnel = ip.user_ns["_colabmagic"].tunnels["vnc"]
    assert tunnel.provider == "frp" and tunnel.local_port == desktop.port
    assert desktop.public_url == f"{tunnel.public_host}:{tunnel.public_port}"
    # a VNC viewer pointed at the public address (here the frps stand-in's loopback port) gets in
    capture_until_xfce(tunnel.public_port, ip.user_ns["_colabmagic"].vnc.password.reveal(),
                       tmp_path / "via-frp.png")
    ip.cell("%vnc stop")
    assert "vnc" not in ip.user_ns["_colabmagic"].tunnels
