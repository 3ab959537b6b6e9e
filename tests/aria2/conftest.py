"""Fixtures for %aria2: a shell configured for a per-test download folder and RPC port, local servers.

Everything runs on 127.0.0.1: a Range-capable HTTP file server from
colabmagic.demo.webserver, a private swarm from colabmagic.demo.swarm, and a
real rclone FUSE mount for the Drive case. DHT, LPD and public trackers are
off (the autouse fixture sets COLABMAGIC_OFFLINE=1).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from support.aria2_helpers import fuse_mounted

from colabmagic.demo.webserver import FileServer, make_file
from colabmagic.system import installer, probes


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """Files served by the HTTP server: name -> (path, sha256, size)."""
    root = tmp_path_factory.mktemp("served")
    found: Dict[str, Any] = {"root": str(root)}
    for name, size, seed in (("small.bin", 6_000_000, 1), ("big.bin", 12_000_000, 2)):
        digest = make_file(str(root / name), size, seed=seed)
        found[name] = (str(root / name), digest, size)
    return found


@pytest.fixture
def serve(payloads: Dict[str, Any]) -> Iterator[Callable[..., FileServer]]:
    """``serve(rate=None, require_headers=None)`` starts a FileServer over the payloads; stopped at teardown."""
    started: List[FileServer] = []

    def start(rate: Optional[int] = None, require_headers: Optional[Dict[str, str]] = None) -> FileServer:
        server = FileServer(payloads["root"], rate=rate, require_headers=require_headers).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def dl_dir(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def aip(ip: Any, dl_dir: Path) -> Any:
    """The ``ip`` shell with %aria2 pointed at a per-test folder and a free RPC port.

    The shell is shared between tests, so every %aria2 setting is first put back to its default.
    """
    ip.config.pop("Aria2Magics", None)
    magics = ip.magics_manager.registry["Aria2Magics"]
    for name in magics.trait_names(config=True):
        if name == "offline":  # shared with every magic; the autouse fixture sets offline mode
            continue
        setattr(magics, name, magics.trait_defaults(name))
    ip.cell(f"%config Aria2Magics.download_dir = {str(dl_dir)!r}")
    ip.cell(f"%config Aria2Magics.rpc_port = {probes.free_port()}")
    return ip


@pytest.fixture
def rclone_mount(tmp_path: Path) -> Iterator[Dict[str, Path]]:
    """A real FUSE mount: ``rclone mount REMOTE MOUNTPOINT --vfs-cache-mode writes`` (unmounted at teardown)."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is needed for the FUSE case")
    installer.ensure_packages(["rclone", "fuse3"])  # the product's installer; a no-op when present
    remote = tmp_path / "remote"
    point = tmp_path / "drive"
    cache = tmp_path / "rclone-cache"
    for p in (remote, point, cache):
        p.mkdir()
    conf = tmp_path / "rclone.conf"
    conf.write_text("")
    log = tmp_path / "rclone.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            ["rclone", "mount", str(remote), str(point), "--vfs-cache-mode", "writes",
             "--cache-dir", str(cache), "--config", str(conf), "--log-level", "INFO"],
            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not fuse_mounted(str(point)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("rclone mount did not come up:\n" + log.read_text()[-2000:])
            time.sleep(0.1)
        yield {"remote": remote, "mount": point}
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], capture_output=True)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
