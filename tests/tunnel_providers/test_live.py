"""Opt-in live tests: the same provider code against the real binaries and the real services.

Skipped unless the real binary is on PATH and COLABMAGIC_OFFLINE was not set
when pytest started (the Makefile sets it, so `make test` never runs these).
ngrok also needs NGROK_AUTHTOKEN; frp needs your frps in FRP_SERVER
(host:port), its FRP_TOKEN, and a port it may open in FRP_REMOTE_PORT. A cloudflared
named tunnel needs CLOUDFLARE_TUNNEL_TOKEN and its hostname in CLOUDFLARED_HOSTNAME.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.request

import pytest
from support.standin_client import Page

OFFLINE_AT_START = os.environ.get("COLABMAGIC_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def needs(binary: str, *env: str):  # type: ignore[no-untyped-def]
    missing = [name for name in env if not os.environ.get(name)]
    return pytest.mark.skipif(
        OFFLINE_AT_START or shutil.which(binary) is None or bool(missing),
        reason=f"live test: needs the real {binary} on PATH, internet (COLABMAGIC_OFFLINE unset)"
               + (f" and {', '.join(missing)}" if missing else ""),
    )


@pytest.fixture
def online(ip, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLABMAGIC_OFFLINE", raising=False)
    for setting in ("frpc_path", "cloudflared_path", "ngrok_path"):
        ip.cell(f"%config TunnelMagics.{setting} = ''")


def get_until(url: str, marker: str, timeout: float = 120.0) -> str:
    """Fetch through real DNS and TLS (a new quick-tunnel name can take a while to resolve)."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "colabmagic-live-test",
                                                           "ngrok-skip-browser-warning": "1"})
            with urllib.request.urlopen(request, timeout=15) as resp:  # noqa: S310
                last = resp.read().decode("utf-8", "replace")
            if marker in last:
                return last
        except OSError as exc:
            last = repr(exc)
        time.sleep(2)
    return last


@pytest.mark.live
@needs("cloudflared")
def test_live_cloudflared_quick_tunnel(ip, page: Page, online: None) -> None:
    t = ip.cell(f"%tunnel {page.port} --via cloudflared").value
    assert t.public_url.endswith(".trycloudflare.com")
    assert page.marker in get_until(t.public_url, page.marker)


@pytest.mark.live
@needs("ngrok", "NGROK_AUTHTOKEN")
def test_live_ngrok_http(ip, page: Page, online: None) -> None:
    t = ip.cell(f"%tunnel {page.port} --via ngrok").value
    assert t.public_url.startswith("https://")
    assert page.marker in get_until(t.public_url, page.marker)


@pytest.mark.live
@needs("frpc", "FRP_SERVER", "FRP_TOKEN", "FRP_REMOTE_PORT")
def test_live_frp_tcp(ip, page: Page, online: None) -> None:
    server, remote = os.environ["FRP_SERVER"], os.environ["FRP_REMOTE_PORT"]
    t = ip.cell(f"%tunnel {page.port} --via frp --server {server} --proto tcp --remote-port {remote}").value
    deadline, body = time.monotonic() + 60, ""
    while time.monotonic() < deadline and page.marker not in body:
        try:
            with socket.create_connection((t.public_host, t.public_port), timeout=15) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                body = sock.makefile("rb").read().decode("utf-8", "replace")
        except OSError as exc:
            body = repr(exc)
            time.sleep(2)
    assert page.marker in body


@pytest.mark.live
@needs("cloudflared", "CLOUDFLARE_TUNNEL_TOKEN", "CLOUDFLARED_HOSTNAME")
def test_live_cloudflared_named_tunnel(ip, page: Page, online: None) -> None:
    """A named tunnel whose hostname routes to the `--url` cloudflared is given (a locally managed
    tunnel; a dashboard-managed one would need its route set to this page's port)."""
    hostname = os.environ["CLOUDFLARED_HOSTNAME"]
    t = ip.cell(f"%tunnel {page.port} --via cloudflared --hostname {hostname}").value
    assert t.public_url == f"https://{hostname}"
    assert page.marker in get_until(t.public_url, page.marker)
