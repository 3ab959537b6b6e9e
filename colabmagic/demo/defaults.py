"""The quickstart notebook's embedded defaults: what the tour connects to when you have nothing yet.

Off hosted Colab, ``start()`` brings up loopback stand-ins for what a
newcomer does not have: a relay sshd standing for "your server", a local
web server with a file to download, a private BitTorrent swarm with a
magnet, a local folder as the rclone "Drive" remote, and a "laptop" key
pair; then it points the magics' settings at them (the ``%config`` lines
it applies are printed). On hosted Colab, ``start()`` uses the real
providers and Google Drive instead. ``stop()`` ends what ``start()`` began.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, List, Optional

from ..system import environment, installer, paths, probes, procfs
from . import relay as demo_relay
from .swarm import LocalSwarm
from .webserver import FileServer, make_file

# A small public file for hosted Colab; its checksum is taken from a second, independent fetch.
HOSTED_FILE_URL = "https://raw.githubusercontent.com/ipython/ipython/main/README.rst"
DEMO_PACKAGES = ["openssh-server", "openssh-client", "aria2", "mktorrent", "opentracker"]
FILE_SIZE = 8_000_000
SWARM_SIZE = 4_000_000


def sha256(path: str) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Laptop:
    """Stands in for your laptop: a key pair, and an ``ssh`` client that trusts only what it is given."""

    folder: Path

    @property
    def private_key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def public_key(self) -> Path:
        return self.folder / "id_ed25519.pub"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def config(self) -> Path:
        return self.folder / "config"

    def make_key(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        if not self.private_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop",
                            "-f", str(self.private_key)], stdin=subprocess.DEVNULL, capture_output=True, check=True)

    def trust(self, tunnel: Any) -> None:
        """Write exactly the printed known_hosts line and Host block, as you would paste them."""
        paths.write_file(self.known_hosts, tunnel.known_hosts_line() + "\n", mode=0o644)
        paths.write_file(self.config, tunnel.ssh_config() + "\n".join([
            "Host *",
            f"    UserKnownHostsFile {self.known_hosts}",
            "    GlobalKnownHostsFile /dev/null",
            f"    IdentityFile {self.private_key}",
            "    IdentitiesOnly yes",
            "    IdentityAgent none",
            "    BatchMode yes",
            "    ConnectTimeout 20",
        ]) + "\n", mode=0o644)

    def ssh(self, tunnel: Any, command: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run ``command`` on this machine over SSH, with the real ``ssh`` client and the tunnel's pinned key."""
        if getattr(tunnel, "ssh", None) is None:
            raise ValueError(f"{tunnel!r} is not an ssh tunnel (use the one %tunnel ssh returned)")
        self.trust(tunnel)
        argv = ["ssh", "-F", str(self.config), tunnel.ssh.host_alias, command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class _HelloHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<h1>Hello from a tiny web app</h1><p>served on this machine, reached through %tunnel</p>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Demo:
    """Everything the quickstart needs, on this machine (``hosted=False``) or on hosted Colab."""

    hosted: bool
    folder: Path
    provider: str
    laptop: Laptop
    file_url: str
    file_sha256: str
    magnet: Optional[str] = None
    magnet_sha256: Optional[str] = None
    downloads: Optional[Path] = None
    drive_remote: Optional[Path] = None
    drive_mountpoint: Optional[Path] = None
    drive_folder: Optional[Path] = None  # where the %%drive_sync cell writes, inside the mount
    settings: List[str] = field(default_factory=list)
    relay: Optional[demo_relay.Relay] = None
    _file_server: Optional[FileServer] = None
    _swarm: Optional[LocalSwarm] = None
    _apps: List[ThreadingHTTPServer] = field(default_factory=list)

    def web_app(self) -> int:
        """Start a tiny web app on a free loopback port (think Gradio or TensorBoard); returns the port."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _HelloHandler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="demo-web-app", daemon=True).start()
        self._apps.append(server)
        return int(server.server_address[1])

    def drive_files(self) -> List[List[str]]:
        """Read the "Drive" remote directly (not through the mount): [file, bytes, sha256] rows."""
        if self.drive_remote is None:
            return []
        rows = []
        for path in sorted(p for p in self.drive_remote.rglob("*") if p.is_file()):
            rows.append([str(path.relative_to(self.drive_remote)), str(path.stat().st_size), sha256(str(path))])
        return rows

    def stop(self) -> List[str]:
        """Stop the demo's own servers (the magics' services stop with ``%colabmagic stop --all``)."""
        stopped = []
        for app in self._apps:
            app.shutdown()
            app.server_close()
            stopped.append("web app")
        self._apps = []
        if self._file_server is not None:
            self._file_server.stop()
            self._file_server = None
            stopped.append("web server")
        if self._swarm is not None:
            self._swarm.stop()
            self._swarm = None
            stopped.append("swarm")
        if self.relay is not None and demo_relay.stop():
            stopped.append("relay")
        if self.drive_mountpoint is not None and _unmount(self.drive_mountpoint):
            stopped.append("drive mount")
        return stopped

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.describe())

    def describe(self) -> str:
        where = "hosted Colab: real providers and Google Drive" if self.hosted else \
            "this machine: embedded defaults on 127.0.0.1"
        lines = [f"quickstart on {where}", f"  tunnel provider: {self.provider}"]
        if self.relay is not None:
            lines.append(f"  relay ('your server'): {self.relay.relay}")
        lines.append(f"  file to download: {self.file_url}")
        if self.magnet:
            lines.append(f"  magnet from the local swarm: {self.magnet[:60]}...")
        if self.drive_remote is not None:
            lines.append(f"  'Drive' remote (a local folder): {self.drive_remote}")
        if self.settings:
            lines.append("  settings applied:")
            lines.extend(f"    {line}" for line in self.settings)
        return "\n".join(lines)


def _unmount(mountpoint: Path) -> bool:
    """Lift a FUSE mount left at ``mountpoint`` and the guard on its bare folder (cleanup only)."""
    from ..services.drive import tracking, writers

    lifted = False
    if tracking.is_mounted(str(mountpoint)):
        from ..system import installer

        tool = installer.fusermount()  # fuse3's or fuse 2's, whichever is installed
        subprocess.run([tool, "-u", "-z", str(mountpoint)] if tool else ["umount", "-l", str(mountpoint)],
                       capture_output=True)
        lifted = True
    writers.unguard(str(mountpoint))
    return lifted


def _free_display() -> int:
    """``:1`` when it is free, else the first free display number."""
    for number in range(1, 100):
        if (not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists()
                and procfs.port_holder(5900 + number) is None and not probes.port_open(5900 + number)):
            return number
    raise RuntimeError("no free X display between :1 and :99")


def _apply(shell: Any, settings: List[str]) -> None:
    # The demo off Colab is offline as a whole process (its own helpers and the daemons it starts
    # too), so it sets the environment variable; the magics' setting only reaches the services.
    if "%config ColabMagicsBase.offline = True" in settings:
        os.environ[paths.OFFLINE_ENV] = "1"
    if shell is None:  # plain Python: the magics are not loaded
        return
    for line in settings:
        shell.run_line_magic("config", line.split(" ", 1)[1])


def _shell(shell: Any) -> Any:
    if shell is not None:
        return shell
    try:
        from IPython import get_ipython

        return get_ipython()
    except ImportError:
        return None


def start(folder: Optional[str] = None, shell: Any = None) -> Demo:
    """``hosted()`` on hosted Colab, else ``local()``."""
    return hosted(folder, shell) if environment.is_hosted_colab() else local(folder, shell)


def local(folder: Optional[str] = None, shell: Any = None) -> Demo:
    """Bring up the loopback stand-ins and point the magics' settings at them."""
    shell = _shell(shell)
    base = Path(folder) if folder else paths.subdir("demo")
    base.mkdir(parents=True, exist_ok=True)
    installer.ensure_packages(DEMO_PACKAGES)
    laptop = Laptop(base / "laptop")
    laptop.make_key()
    relay = demo_relay.start(folder=base / "relay")
    www = base / "www"
    www.mkdir(exist_ok=True)
    file_sha = make_file(str(www / "sample.bin"), FILE_SIZE, seed=1)
    file_server = FileServer(str(www)).start()
    seed = base / "seed"
    seed.mkdir(exist_ok=True)
    magnet_sha = make_file(str(seed / "shared.bin"), SWARM_SIZE, seed=2)
    swarm = LocalSwarm(str(seed / "shared.bin"), str(base / "swarm"))
    try:
        swarm.start()
    except Exception:
        file_server.stop()
        raise
    downloads = base / "downloads"
    remote = base / "drive-remote"
    mountpoint = base / "drive"
    downloads.mkdir(exist_ok=True)
    remote.mkdir(exist_ok=True)
    settings = [
        "%config ColabMagicsBase.offline = True",  # nothing beyond this machine: no DHT, public trackers, ...
        f"%config TunnelMagics.relay = {relay.relay!r}",
        f"%config TunnelMagics.relay_host_key = {relay.host_key!r}",
        f"%config TunnelMagics.relay_key_file = {str(relay.client_key)!r}",
        f"%config VncMagics.display = ':{_free_display()}'",
        f"%config Aria2Magics.download_dir = {str(downloads)!r}",
        "%config DriveMagics.backend = 'rclone'",
        f"%config DriveMagics.remote = {str(remote)!r}",
        f"%config DriveMagics.mountpoint = {str(mountpoint)!r}",
    ]
    _apply(shell, settings)
    return Demo(hosted=False, folder=base, provider="ssh", laptop=laptop, file_url=file_server.url("sample.bin"),
                file_sha256=file_sha, magnet=swarm.magnet, magnet_sha256=magnet_sha, downloads=downloads,
                drive_remote=remote, drive_mountpoint=mountpoint, drive_folder=mountpoint / "quickstart",
                settings=settings, relay=relay,
                _file_server=file_server, _swarm=swarm)


def hosted(folder: Optional[str] = None, shell: Any = None) -> Demo:
    """Hosted Colab: a cloudflared quick tunnel, a public file, Colab's own Drive; no BitTorrent (its terms)."""
    shell = _shell(shell)
    base = Path(folder) if folder else paths.subdir("demo")
    laptop = Laptop(base / "laptop")
    laptop.make_key()
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        with urllib.request.urlopen(HOSTED_FILE_URL, timeout=60) as resp, open(reference, "wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out)
        file_sha = sha256(str(reference))
    settings = ["%config DriveMagics.backend = 'colab'"]
    _apply(shell, settings)
    return Demo(hosted=True, folder=base, provider="cloudflared", laptop=laptop, file_url=HOSTED_FILE_URL,
                file_sha256=file_sha, downloads=Path("/content/downloads"),
                drive_folder=Path("/content/drive/MyDrive/colabmagic-quickstart"), settings=settings)
