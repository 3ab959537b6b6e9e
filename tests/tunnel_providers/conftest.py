"""Fixtures for the tunnel provider tests: stand-in binaries, a web page to expose, the user's frps.

The stand-ins (tests/standins) speak each provider's real interface and
really carry traffic on loopback. Public host names they advertise are
"resolved" through the stand-ins' registry folder ($STANDIN_EDGE_DIR), the
test's stand-in for DNS; ``fetch`` uses it.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, Optional
from urllib.parse import urlsplit

import pytest

STANDINS = Path(__file__).resolve().parent.parent / "standins"
sys.path.insert(0, str(STANDINS))

import _edge  # noqa: E402

from colabmagic.system import probes  # noqa: E402


def standin(name: str) -> str:
    return str(STANDINS / name)


SAFE_ROOT = Path.home() / ".cache" / "colabmagic-tests"


@pytest.fixture(autouse=True)
def cm_home(cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A colabmagic home outside /tmp: sshd's StrictModes refuses keys below a world-writable folder."""
    SAFE_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(SAFE_ROOT, 0o700)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=SAFE_ROOT))
    monkeypatch.setenv("COLABMAGIC_HOME", str(home))
    yield home
    from colabmagic.system import supervisor

    os.environ["COLABMAGIC_HOME"] = str(home)
    for svc in sorted(supervisor.running(), key=lambda s: s.started_at, reverse=True):
        svc.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "edge"
    folder.mkdir()
    monkeypatch.setenv(_edge.EDGE_ENV, str(folder))
    return folder


class Page:
    def __init__(self, port: int, marker: str):
        self.port = port
        self.marker = marker


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


class Frps:
    def __init__(self, port: int, vhost_port: int, token: str):
        self.port = port
        self.vhost_port = vhost_port
        self.token = token
        self.server = f"127.0.0.1:{port}"


@pytest.fixture
def frps(tmp_path: Path) -> Iterator[Frps]:
    """The user's frp server (stand-in) on loopback, with a token and TLS required."""
    token = "frp-" + secrets.token_hex(12)
    port, vhost = probes.free_port(), probes.free_port()
    config = tmp_path / "frps.toml"
    config.write_text(
        f'bindAddr = "127.0.0.1"\nbindPort = {port}\nvhostHTTPPort = {vhost}\nproxyBindAddr = "127.0.0.1"\n'
        f'auth.method = "token"\nauth.token = "{token}"\ntransport.tls.force = true\n'
    )
    log = open(tmp_path / "frps.log", "wb")
    proc = subprocess.Popen([standin("frps"), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        assert probes.wait_for(lambda: probes.port_open(port), 20), (tmp_path / "frps.log").read_text()
        yield Frps(port, vhost, token)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def fetch(url: str, dns: Optional[Dict[str, str]] = None, timeout: float = 10.0) -> str:
    """GET ``url`` as a browser would, resolving stand-in host names through the edge registry."""
    parts = urlsplit(url)
    scheme = parts.scheme
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    authority = f"{host}:{port}"
    try:
        target_host, target_port = _edge.resolve(authority)
    except (OSError, ValueError):
        target_host, target_port = (dns or {}).get(host, host), port
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(target_host, target_port, timeout=timeout, context=_edge.client_tls())
    else:
        conn = http.client.HTTPConnection(target_host, target_port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Host": host if port in (80, 443) else authority})
        resp = conn.getresponse()
        return f"{resp.status} " + resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def fetch_until(url: str, marker: str, timeout: float = 30.0, dns: Optional[Dict[str, str]] = None) -> str:
    """Fetch until the page carries ``marker`` (a fresh agent may need a moment to register)."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            last = fetch(url, dns=dns)
            if marker in last:
                return last
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        time.sleep(0.2)
    return last


def tcp_fetch(host: str, port: int, dns: Optional[Dict[str, str]] = None, timeout: float = 10.0) -> str:
    """An HTTP GET over a raw TCP public address (frp tcp, ngrok tcp)."""
    try:
        target_host, target_port = _edge.resolve(f"{host}:{port}")
    except (OSError, ValueError):
        target_host, target_port = (dns or {}).get(host, host), port
    with socket.create_connection((target_host, target_port), timeout=timeout) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def tcp_fetch_until(host: str, port: int, marker: str, timeout: float = 30.0) -> str:
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            last = tcp_fetch(host, port)
            if marker in last:
                return last
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    return last


def kill_agent(name: str) -> int:
    """SIGKILL tunnel ``name``'s agent; return its pid once the keeper has a new agent up and ready."""
    from colabmagic.services import tunnels
    from colabmagic.system import supervisor

    service = supervisor.adopt(tunnels.service_name(name))
    assert service is not None and service.pid is not None
    old = service.pid
    os.kill(old, signal.SIGKILL)
    assert supervisor.wait_restarted(service, old, timeout=30), service.log_tail()
    assert tunnels.wait_public(name, timeout=30), service.log_tail()
    return old


def assert_secret_hidden(secret: str, home: Path, outputs: list) -> None:
    """The secret is in no cell output, no colabmagic log, and no process's command line."""
    from colabmagic.system import procfs

    assert len(secret) >= 8
    for text in outputs:
        assert secret not in text
    for log in (home / "logs").glob("*"):
        assert secret not in log.read_text(errors="replace"), log
    for pid in procfs.pids():
        assert secret not in " ".join(procfs.cmdline(pid)), pid
