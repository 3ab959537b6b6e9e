"""On hosted Colab (google.colab stand-in), --web shows noVNC in the notebook through Colab's port proxy.

The stand-in (tests/standins/colab) answers ``proxyPort`` as Colab does and
really forwards the proxied https URL to the local port over loopback, so
the page fetched through it is our websockify's noVNC page.
"""

from __future__ import annotations

import http.client
import sys
from pathlib import Path
from typing import Iterator, List
from urllib.parse import urlsplit

import pytest

STANDINS = Path(__file__).resolve().parents[1] / "standins"


@pytest.fixture
def colab_displays(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[List[object]]:
    """Look like hosted Colab; record what is displayed in the cell output."""
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-standin")
    monkeypatch.setenv("TBE_EPHEM_CREDS_ADDR", "127.0.0.1:9")  # what only hosted Colab has
    monkeypatch.setenv("COLABMAGIC_STANDIN_EDGE_DIR", str(tmp_path / "edge"))
    monkeypatch.syspath_prepend(str(STANDINS / "colab"))
    shown: List[object] = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *objs, **_kw: shown.extend(objs))
    yield shown
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        del sys.modules[name]


def _fetch_through_proxy(url: str) -> str:
    from standins import _edge  # the stand-in's "DNS": which loopback port serves the proxy host

    parts = urlsplit(url)
    host, port = _edge.resolve(f"{parts.hostname}:443")
    conn = http.client.HTTPSConnection(host, port, timeout=20, context=_edge.client_tls())
    try:
        conn.request("GET", parts.path, headers={"Host": str(parts.hostname)})
        resp = conn.getresponse()
        return f"{resp.status} " + resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_web_desktop_is_shown_in_the_notebook_through_colabs_proxy(ip, display_number, colab_displays):
    from IPython.display import IFrame

    c = ip.cell(f"%vnc start --web --display :{display_number}")
    assert "terms" in c.stdout  # hosted Colab's notice on remote desktops
    desktop = c.value
    web_port = int(desktop.web_url.split(":")[2].split("/")[0])
    assert desktop.public_url.startswith("https://") and f"-{web_port}-colab." in desktop.public_url
    frames = [obj for obj in colab_displays if isinstance(obj, IFrame)]
    assert frames and frames[0].src == desktop.public_url
    password = ip.user_ns["_colabmagic"].vnc.password.reveal()
    assert password not in desktop.public_url  # the frame asks for it; it never lands in the notebook
    page = _fetch_through_proxy(desktop.public_url)
    assert page.startswith("200 ") and "noVNC" in page


def test_via_colab_uses_the_tunnel_layer_and_stop_ends_it(ip, display_number, colab_displays):
    desktop = ip.cell(f"%vnc start --web --via colab --display :{display_number}").value
    tunnels = ip.user_ns["_colabmagic"].tunnels
    assert "vnc" in tunnels and tunnels["vnc"].provider == "colab"
    assert desktop.public_url and desktop.public_url.startswith(tunnels["vnc"].public_url.rstrip("/"))
    assert _fetch_through_proxy(desktop.public_url).startswith("200 ")
    # the same desktop without --via: reused, and the tunnel an earlier run opened is closed
    again = ip.cell(f"%vnc start --web --display :{display_number}")
    assert "reused" in again.stdout and again.value.pid == desktop.pid
    assert "vnc" not in ip.user_ns["_colabmagic"].tunnels
    ip.cell(f"%vnc start --web --via colab --display :{display_number}")
    assert "vnc" in ip.user_ns["_colabmagic"].tunnels
    ip.cell("%vnc stop")
    assert "vnc" not in ip.user_ns["_colabmagic"].tunnels
