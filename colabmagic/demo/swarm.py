"""A private BitTorrent swarm on loopback for demos and tests: a tracker, a torrent and a seeder.

``LocalSwarm(payload, workdir).start()`` makes a torrent of ``payload``
with ``mktorrent`` announcing to a local ``opentracker`` (the Debian build
only tracks whitelisted info-hashes, so the hash goes into its whitelist),
starts a seeding ``aria2c`` with DHT, LPD and peer exchange off, waits
until the tracker lists the seeder, and offers ``magnet`` (with ``tr=`` the
local tracker) and ``torrent`` (the .torrent file). Nothing leaves
127.0.0.1. ``stop()`` ends the processes it started, and only those.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bdecode(data: bytes, i: int = 0) -> Tuple[Any, int]:
    """Decode one bencoded value at ``i``; returns (value, end offset)."""
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c == b"l":
        i += 1
        items = []
        while data[i:i + 1] != b"e":
            value, i = bdecode(data, i)
            items.append(value)
        return items, i + 1
    if c == b"d":
        i += 1
        result: Dict[bytes, Any] = {}
        while data[i:i + 1] != b"e":
            key, i = bdecode(data, i)
            value, i = bdecode(data, i)
            result[key] = value
        return result, i + 1
    colon = data.index(b":", i)
    length = int(data[i:colon])
    return data[colon + 1:colon + 1 + length], colon + 1 + length


def info_hash(torrent: bytes) -> str:
    """The v1 info-hash: SHA-1 of the exact bytes of the ``info`` dictionary."""
    if torrent[:1] != b"d":
        raise ValueError("not a torrent file")
    i = 1
    while torrent[i:i + 1] != b"e":
        key, i = bdecode(torrent, i)
        start = i
        _, i = bdecode(torrent, i)
        if key == b"info":
            return hashlib.sha1(torrent[start:i]).hexdigest()
    raise ValueError("torrent has no info dictionary")


class LocalSwarm:
    """opentracker + one seeding aria2c for ``payload`` (a file or folder), all on 127.0.0.1."""

    def __init__(self, payload: str, workdir: str, name: Optional[str] = None):
        self.payload = Path(payload).resolve()
        self.workdir = Path(workdir).resolve()
        self.name = name or self.payload.name
        self.tracker_port = 0
        self.peer_port = 0
        self.info_hash = ""
        self.torrent = self.workdir / f"{self.name}.torrent"
        self._procs: List[subprocess.Popen] = []

    @property
    def announce(self) -> str:
        return f"http://127.0.0.1:{self.tracker_port}/announce"

    @property
    def magnet(self) -> str:
        query = urllib.parse.urlencode({"dn": self.name, "tr": self.announce})
        return f"magnet:?xt=urn:btih:{self.info_hash}&{query}"

    def _spawn(self, argv: List[str], log: Path, cwd: Optional[Path] = None) -> subprocess.Popen:
        with open(log, "ab") as fh:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                    cwd=str(cwd) if cwd else None, start_new_session=True, close_fds=True)
        self._procs.append(proc)
        return proc

    def start(self, timeout: float = 60.0) -> LocalSwarm:
        for tool in ("mktorrent", "opentracker", "aria2c"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is not installed (apt-get install mktorrent opentracker aria2)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tracker_port = _free_port()
        if self.torrent.exists():
            self.torrent.unlink()
        subprocess.run(
            ["mktorrent", "-a", self.announce, "-o", str(self.torrent), "-l", "16", str(self.payload)],
            check=True, capture_output=True,
        )
        self.info_hash = info_hash(self.torrent.read_bytes())
        # opentracker chroots into its root folder and drops to 'nobody': the whitelist lives inside it.
        root = self.workdir / "tracker"
        root.mkdir(exist_ok=True)
        os.chmod(root, 0o755)
        whitelist = root / "whitelist"
        whitelist.write_text(self.info_hash + "\n")
        os.chmod(whitelist, 0o644)
        conf = root / "opentracker.conf"
        conf.write_text(
            f"listen.tcp_udp 127.0.0.1:{self.tracker_port}\n"
            "access.whitelist /whitelist\n"
            f"tracker.rootdir {root}\n"
        )
        self._spawn(["opentracker", "-f", str(conf)], self.workdir / "opentracker.log", cwd=root)
        self.peer_port = _free_port()
        self._spawn(
            [
                "aria2c", "--no-conf=true", "--enable-rpc=false",
                f"--dir={self.payload.parent}", "--check-integrity=true", "--bt-seed-unverified=true",
                "--seed-ratio=0.0", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
                "--enable-peer-exchange=false", f"--listen-port={self.peer_port}",
                "--bt-tracker-connect-timeout=5", "--console-log-level=warn", "--summary-interval=0",
                "--show-console-readout=false", f"--dht-file-path={self.workdir / 'dht.dat'}",
                "--", str(self.torrent),
            ],
            self.workdir / "seeder.log",
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seeders() >= 1:
                return self
            for proc in self._procs:
                if proc.poll() is not None:
                    self.stop()
                    program = proc.args[0] if isinstance(proc.args, (list, tuple)) else proc.args
                    raise RuntimeError(f"{program!s} exited with {proc.returncode} (see {self.workdir})")
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the seeder did not register with the tracker within {timeout:.0f}s")

    def seeders(self) -> int:
        """How many seeders the tracker knows for our torrent (a scrape request)."""
        raw = bytes.fromhex(self.info_hash)
        url = f"http://127.0.0.1:{self.tracker_port}/scrape?info_hash={urllib.parse.quote_from_bytes(raw)}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                data, _ = bdecode(resp.read())
        except (OSError, ValueError):
            return 0
        files = data.get(b"files", {}) if isinstance(data, dict) else {}
        entry = files.get(raw, {})
        return int(entry.get(b"complete", 0)) if isinstance(entry, dict) else 0

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs = []

    def __enter__(self) -> LocalSwarm:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
