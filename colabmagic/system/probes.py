"""Readiness probes: is a port open, does a URL answer, has a log line appeared.

A daemon is ready when one of these passes before a deadline, never after
a fixed sleep. Each probe is a cheap function returning a bool, so the
supervisor can poll it.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Callable, Optional


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def banner(port: int, prefix: bytes, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """The server greets with ``prefix`` (``b"SSH-"``, ``b"RFB "``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(len(prefix)) == prefix
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """The URL answers with any HTTP status below 500."""
    import urllib.error  # imported here: urllib.request is slow to import and %load_ext must be fast
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URLs
            return resp.status < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (OSError, ValueError):
        return False


def log_matches(path: Path, pattern: str, since: int = 0) -> Optional[re.Match]:
    """The first match of ``pattern`` in the log after byte offset ``since``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    return re.search(pattern, text)


def wait_for(probe: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``probe`` until it passes or ``timeout`` seconds have gone by."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return True
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
