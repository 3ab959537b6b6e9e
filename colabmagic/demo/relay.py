"""A stand-in for "your server": a second OpenSSH sshd on a loopback port that accepts reverse tunnels.

``start()`` runs it (supervised, in the foreground, with its own host key and an
authorized client key, both generated on first use in its folder) and returns a
``Relay`` with everything ``%tunnel ssh --via ssh`` needs: ``relay`` (the
``--relay`` value), ``host_key`` (for ``--relay-host-key``) and ``client_key``
(for ``--relay-key-file``). ``stop()`` and ``start()`` again keep the same key
and port, so a tunnel can be seen coming back. Used by the quickstart notebook
and the tests; it is real sshd, only its place (this machine) is a stand-in.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ..system import installer, paths, probes, procfs, supervisor

SERVICE = "demo-relay"


@dataclass(frozen=True)
class Relay:
    port: int
    host_key: str  # "TYPE BASE64" of the relay's host key
    client_key: Path  # private key the relay authorizes (for --relay-key-file)
    folder: Path
    user: str = "root"

    @property
    def relay(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key}"


def _keygen(path: Path, comment: str) -> None:
    _sshd()  # ssh-keygen comes with OpenSSH
    if path.exists():
        return
    keygen = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   stdin=subprocess.DEVNULL, capture_output=True, check=True)
    os.chmod(path, 0o600)


def _sshd() -> str:
    """sshd's absolute path (it re-executes itself), installed through colabmagic's installer if missing."""
    for attempt in range(2):
        for candidate in (shutil.which("sshd"), "/usr/sbin/sshd"):
            if candidate and os.access(candidate, os.X_OK):
                return os.path.abspath(candidate)
        if attempt == 0:
            installer.ensure_packages(["openssh-server", "openssh-client"])
    raise FileNotFoundError("sshd not found even after installing openssh-server")


def start(folder: Optional[Path] = None, port: Optional[int] = None, name: str = SERVICE,
          timeout: float = 30.0) -> Relay:
    """Run (or reuse) the relay sshd; its keys and port are remembered in ``folder``."""
    folder = Path(folder) if folder is not None else paths.subdir(name)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    host_key = folder / "ssh_host_ed25519_key"
    client_key = folder / "client_ed25519"
    _keygen(host_key, "demo-relay-host")
    _keygen(client_key, "demo-relay-client")
    port_file = folder / "port"
    if port is None:
        try:
            port = int(port_file.read_text())
        except (OSError, ValueError):
            port = probes.free_port()
    paths.write_file(port_file, f"{port}\n")
    paths.write_file(folder / "authorized_keys", Path(f"{client_key}.pub").read_text())
    config = folder / "sshd_config"
    paths.write_file(config, "\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        "AddressFamily inet",
        f"HostKey {host_key}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        "StrictModes no",  # the demo folder may sit under /tmp; this sshd is a stand-in for your server
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AllowTcpForwarding yes",
        "GatewayPorts no",
        "ClientAliveInterval 5",
        "ClientAliveCountMax 3",
        "LogLevel VERBOSE",
    ]) + "\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    spec = supervisor.ServiceSpec(
        name=name,
        argv=[_sshd(), "-D", "-e", "-f", str(config)],
        backoff_max=2.0,
        info={"group": "demo", "address": f"127.0.0.1:{port}"},
    )
    supervisor.start(spec, ready=lambda: probes.banner(port, b"SSH-"), timeout=timeout)
    key_type, blob = Path(f"{host_key}.pub").read_text().split()[:2]
    return Relay(port=port, host_key=f"{key_type} {blob}", client_key=client_key, folder=folder)


def _descendants(root: int) -> List[procfs.ProcessIdentity]:
    children: Dict[int, List[int]] = {}
    for pid in procfs.pids():
        parent = procfs.ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: List[procfs.ProcessIdentity] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        ident = procfs.ProcessIdentity.of(pid)
        if ident is not None:
            found.append(ident)
        todo.extend(children.get(pid, []))
    return found


def stop(name: str = SERVICE) -> bool:
    """Stop the relay and every session it carries, as a server going down would: tunnels drop.

    sshd's per-connection processes outlive its listener (and rewrite their
    title over the environment), so they are found as the keeper's descendants
    before the stop and ended after it if still the same processes.
    """
    service = supervisor.adopt(name)
    if service is None:
        return False
    keeper = service.keeper
    sessions = _descendants(keeper.pid) if keeper is not None else []
    service.stop()
    for ident in sessions:
        if ident.alive():
            try:
                os.kill(ident.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(i.alive() for i in sessions):
        time.sleep(0.05)
    return True
