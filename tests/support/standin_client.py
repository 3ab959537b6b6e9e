"""The test's side of the provider stand-ins: reach their public addresses, kill agents, find leaks.

Public host names the stand-ins advertise (``*.trycloudflare.com``,
``*.ngrok-free.app``) are "resolved" through the stand-ins' registry folder
($COLABMAGIC_STANDIN_EDGE_DIR), the test's stand-in for DNS.

Not a stand-in itself: the programs it drives are in tests/standins/, each
naming the real source and version it follows.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import urlsplit

from standins import _edge
from standins.frps_server import FrpsServer as Frps  # noqa: F401  (the tests' name for it)

STANDINS = Path(__file__).resolve().parent.parent / "standins"


def standin(name: str) -> str:
    return str(STANDINS / name)


class Page:
    def __init__(self, port: int, marker: str):
        self.port = port
        self.marker = marker


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
