"""Shared test fixtures: an isolated colabmagic home, offline mode, a fresh IPython shell, and
the SSH side (a relay, the user's key, the real ssh client).

Every test gets its own ``$COLABMAGIC_HOME`` and ``COLABMAGIC_OFFLINE=1``;
whatever services it started under that home are stopped in teardown, even
when the test fails. ``ip`` is a fresh InteractiveShell with
``%load_ext colabmagic`` already run, driven in the user's own syntax.
``safe_home_dir`` makes a home outside /tmp, where sshd's StrictModes
accepts authorized_keys (as the default /var/lib/colabmagic).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from support.homes import moved_home, stop_services_of


@pytest.fixture(autouse=True)
def cm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "cmhome"
    home.mkdir()
    monkeypatch.setenv("COLABMAGIC_HOME", str(home))
    monkeypatch.setenv("COLABMAGIC_OFFLINE", "1")
    from colabmagic.system import secrets

    secrets.forget()  # what a platform's Secrets said is remembered per kernel; each test is a new one
    yield home
    stop_services_of(home)


@pytest.fixture
def edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The provider stand-ins' "edge" registry folder for this test (their DNS; see standins/_edge.py)."""
    from standins import _edge

    folder = tmp_path / "edge"
    folder.mkdir()
    monkeypatch.setenv(_edge.EDGE_ENV, str(folder))
    return folder


@pytest.fixture
def frps(tmp_path: Path) -> Iterator[Any]:
    """The user's frp server (the frps stand-in) on loopback: token auth, TLS required."""
    from standins.frps_server import FrpsServer

    server = FrpsServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def safe_home(cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's colabmagic home moved outside /tmp (see ``safe_home_dir``)."""
    with moved_home(monkeypatch) as home:
        yield home


class Cell:
    """The outcome of one cell: its result, captured output and error."""

    def __init__(self, result: Any, stdout: str, stderr: str):
        self.result = result
        self.value = result.result
        self.error = result.error_in_exec or result.error_before_exec
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def ip(capfd: pytest.CaptureFixture) -> Iterator[Any]:
    """A fresh IPython shell with colabmagic loaded. ``ip.cell(src)`` runs a cell and returns a Cell.

    A new shell per test (support/shell.py): no %config, magic or hook of an earlier test is left.
    """
    from support.shell import close_shell, fresh_shell

    shell = fresh_shell()

    def cell(source: str, check: bool = True) -> Cell:
        capfd.readouterr()
        result = shell.run_cell(source, store_history=True)
        out, err = capfd.readouterr()
        c = Cell(result, out, err)
        if check and c.error is not None:
            raise AssertionError(f"cell failed: {source!r}\n{out}\n{err}") from c.error
        return c

    shell.cell = cell  # type: ignore[attr-defined]
    cell("%load_ext colabmagic")
    try:
        yield shell
    finally:
        shell.cell = None  # type: ignore[attr-defined]
        close_shell(shell)


# --- the SSH side: a relay ("your server"), the user's key pair, and the real ssh client ------
@pytest.fixture
def relay(cm_home: Path, tmp_path: Path) -> Iterator[Any]:
    """A second sshd on a free loopback port standing for "your server"."""
    from colabmagic.demo import relay as demo_relay

    r = demo_relay.start(folder=tmp_path / "relay")
    yield r
    demo_relay.stop()


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    """The user's own key pair on "their laptop"."""
    path = tmp_path / "laptop" / "id_ed25519"
    path.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(path)], check=True)
    return path


SshRunner = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def ssh_login(tmp_path: Path) -> SshRunner:
    """Run the real ssh client with ONLY the printed known_hosts line and Host block."""

    def run(known_hosts_line: str, host_block: str, key: Path, command: str,
            extra: Optional[List[str]] = None, timeout: float = 30, host: str = "colabmagic",
            env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        known = folder / "known_hosts"
        known.write_text(known_hosts_line + "\n")
        config = folder / "config"
        config.write_text(host_block)
        argv = ["ssh", "-F", str(config), "-o", f"UserKnownHostsFile={known}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-o", "ConnectTimeout=10", "-i", str(key)]
        argv += list(extra or [])
        argv += [host, command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=env)

    return run
