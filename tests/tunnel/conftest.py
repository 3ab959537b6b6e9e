"""Fixtures for %tunnel tests: a relay sshd, a client key, ssh login, and a StrictModes-safe home.

Most tests keep pytest's ``$COLABMAGIC_HOME`` below /tmp, where sshd's
StrictModes would refuse authorized_keys, so they exercise the copy under
/run; ``safe_home`` puts the home under root's own cache folder instead,
as the default /var/lib/colabmagic is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from colabmagic.demo import relay as demo_relay
from colabmagic.system import probes

SAFE_ROOT = Path.home() / ".cache" / "colabmagic-tests"


@pytest.fixture(autouse=True)
def _stop_sshd(cm_home: Path) -> Iterator[None]:
    """Stop our sshd through its own stop(), which also removes its authorized_keys copy under /run."""
    yield
    from colabmagic.services import sshd

    sshd.stop()


@pytest.fixture
def safe_home(cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
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


@pytest.fixture
def relay(cm_home: Path, tmp_path: Path) -> Iterator[demo_relay.Relay]:
    """A second sshd on a free loopback port standing for "your server"."""
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


def _relay_args(r: demo_relay.Relay, remote_port: Optional[int] = None) -> str:
    port = remote_port or probes.free_port()
    return (f"--via ssh --relay {r.relay} --relay-host-key '{r.host_key}' "
            f"--relay-key-file {r.client_key} --remote-port {port}")


@pytest.fixture
def relay_args() -> Callable[..., str]:
    """``relay_args(relay, remote_port=None)``: the ssh-provider options for a relay."""
    return _relay_args


SshRunner = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def ssh_login(tmp_path: Path) -> SshRunner:
    """Run the real ssh client with ONLY the printed known_hosts line and Host block."""

    def run(known_hosts_line: str, host_block: str, key: Path, command: str,
            extra: Optional[List[str]] = None, timeout: float = 30) -> subprocess.CompletedProcess:
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
        argv += ["colabmagic", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    return run
