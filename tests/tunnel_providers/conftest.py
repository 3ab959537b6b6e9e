"""Fixtures for the tunnel provider tests: stand-in binaries, a web page to expose, the user's frps.

The stand-ins (tests/standins) speak each provider's real interface and
really carry traffic on loopback; support/standin_client.py reaches them.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from support.standin_client import Page

from colabmagic.system import probes


@pytest.fixture(autouse=True)
def provider_test_setup(safe_home: Path, edge: Path) -> Path:
    """Every test here: a colabmagic home outside /tmp (``safe_home``: sshd's StrictModes refuses
    keys below a world-writable folder) and the stand-ins' own edge folder (``edge``)."""
    return safe_home


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
