"""Fixtures for the tunnel provider tests: stand-in binaries, a web page to expose, the user's frps.

The stand-ins (tests/standins) speak each provider's real interface and
really carry traffic on loopback; standin_client.py reaches them.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from homes import moved_home
from standin_client import Frps, Page, _edge

from colabmagic.system import probes


@pytest.fixture(autouse=True)
def cm_home(cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A colabmagic home outside /tmp: sshd's StrictModes refuses keys below a world-writable folder."""
    with moved_home(monkeypatch) as home:
        yield home


@pytest.fixture(autouse=True)
def edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "edge"
    folder.mkdir()
    monkeypatch.setenv(_edge.EDGE_ENV, str(folder))
    return folder


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A local http.server on a free loopback port serving a page with a unique marker."""
    root = tmp_path / "site"
    root.mkdir()
    marker = "page-" + secrets.token_hex(8)
    (root / "index.html").write_text(f"<html><body>{marker}</body></html>\n")
    port = probes.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert probes.wait_for(lambda: probes.port_open(port), 20), "http.server did not start"
        yield Page(port, marker)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def frps(tmp_path: Path) -> Iterator[Frps]:
    """The user's frp server (stand-in) on loopback, with a token and TLS required."""
    server = Frps(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def forget_tunnel_settings() -> Iterator[None]:
    """%config values outlive a test's shell (one IPython instance per session): put ours back."""
    yield
    from IPython.core.interactiveshell import InteractiveShell

    if not InteractiveShell.initialized():
        return
    shell = InteractiveShell.instance()
    for line in ("TunnelMagics.frpc_path = ''", "TunnelMagics.cloudflared_path = ''",
                 "TunnelMagics.ngrok_path = ''", "TunnelMagics.timeout = 60.0",
                 "TunnelMagics.identity = ''"):
        try:
            shell.run_line_magic("config", line)
        except Exception:  # the extension was not loaded in this test
            pass
