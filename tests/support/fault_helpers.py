"""Helpers shared by the fault tests: relay options, the real ssh client, bounded timing of a recovery."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from colabmagic.demo import relay as demo_relay
from colabmagic.system import probes

from .displays import free_display  # noqa: F401  (the fault tests' import)


def time_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> Tuple[bool, float]:
    """(whether ``predicate`` came true within ``timeout``, seconds it took)."""
    start = time.monotonic()
    ok = probes.wait_for(predicate, timeout=timeout, interval=interval)
    return ok, time.monotonic() - start


def relay_args(r: demo_relay.Relay, remote_port: Optional[int] = None, port: Optional[int] = None) -> str:
    """The ssh-provider options; ``port`` reaches the relay through another port (a proxy)."""
    relay = f"{r.user}@127.0.0.1:{port}" if port else r.relay
    return (f"--via ssh --relay {relay} --relay-host-key '{r.host_key}' "
            f"--relay-key-file {r.client_key} --remote-port {remote_port or probes.free_port()}")


def ssh_argv(tunnel: Any, key: Path, folder: Path) -> List[str]:
    """The real ssh client with ONLY the printed known_hosts line and Host block, then the host alias."""
    folder = Path(tempfile.mkdtemp(dir=folder))
    known = folder / "known_hosts"
    known.write_text(tunnel.known_hosts_line() + "\n")
    config = folder / "config"
    config.write_text(tunnel.ssh_config())
    return ["ssh", "-F", str(config), "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "ConnectTimeout=20", "-i", str(key), "colabmagic"]


def login_ok(tunnel: Any, key: Path, folder: Path, timeout: float = 15) -> bool:
    try:
        r = subprocess.run(ssh_argv(tunnel, key, folder) + ["echo alive"], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and r.stdout.strip() == "alive"


class HalfOpenProxy:
    """A loopback TCP forwarder whose existing links can be made to drop every byte silently.

    ``freeze()`` turns every connection open at that moment into a half-open
    link: bytes are read and thrown away in both directions, nothing is
    closed, so neither end sees an error; only keepalives can tell. New
    connections are forwarded normally, as after a network path comes back.
    """

    def __init__(self, target_port: int):
        import socket
        import threading

        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.frozen: set = set()
        self.links: List[Tuple[Any, Any]] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            link = (client, upstream)
            with self.lock:
                self.links.append(link)
            for src, dst in (link, (upstream, client)):
                threading.Thread(target=self._pump, args=(link, src, dst), daemon=True).start()

    def _pump(self, link: Tuple[Any, Any], src: Any, dst: Any) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if id(link) in self.frozen:
                continue  # the black hole: swallowed, never answered, never closed
            try:
                dst.sendall(data)
            except OSError:
                break
        if id(link) not in self.frozen:
            for s in link:
                try:
                    s.close()
                except OSError:
                    pass

    def freeze(self) -> int:
        with self.lock:
            for link in self.links:
                self.frozen.add(id(link))
            return len(self.links)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        with self.lock:
            for link in self.links:
                for s in link:
                    try:
                        s.close()
                    except OSError:
                        pass


def foreign_listener(port: int = 0) -> Tuple[subprocess.Popen, int]:
    """A process colabmagic did not start, listening on a loopback port; (process, port)."""
    import sys

    code = ("import socket, sys, time\ns = socket.socket()\ns.bind(('127.0.0.1', int(sys.argv[1])))\n"
            "s.listen(1)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


RFB_CAPTURE = """
import sys
from vncdotool import api
password = sys.stdin.readline().rstrip("\\n")
client = api.connect("127.0.0.1::" + sys.argv[1], password=password, timeout=20)
client.captureScreen(sys.argv[2])
client.disconnect()
api.shutdown()
"""


def rfb_login(port: int, password: str, out: Path) -> bool:
    """A real VNC client (vncdotool, in a child; the password on its stdin) logs in and captures a PNG."""
    import sys

    try:
        out.unlink()
    except FileNotFoundError:
        pass
    try:
        r = subprocess.run([sys.executable, "-c", RFB_CAPTURE, str(port), str(out)], input=password + "\n",
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and out.exists() and out.stat().st_size > 1000


def release_drive_mount(mountpoint: Path) -> None:
    """Stop the drive services, detach the mount and lift the guard, so the folder can go."""
    from colabmagic.services.drive import writers
    from colabmagic.system import supervisor

    for name in ("drive-flush", "drive-rclone"):
        svc = supervisor.adopt(name)
        if svc is not None:
            svc.stop()
    subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
    writers.unguard(str(mountpoint))
    subprocess.run(["chattr", "-i", str(mountpoint)], capture_output=True)
