"""``%aria2 add --wait``: the release's aria2c downloads from a loopback HTTP server, sha256 matching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matrix_helpers import package_version, sha256

from colabmagic.demo.webserver import FileServer, make_file
from colabmagic.system import probes


def test_http_download_has_the_served_sha256(ip: Any, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    digest = make_file(str(served / "data.bin"), 8_000_000, seed=13)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    ip.cell(f"%config Aria2Magics.download_dir = {str(downloads)!r}")
    ip.cell(f"%config Aria2Magics.rpc_port = {probes.free_port()}")
    server = FileServer(str(served)).start()
    try:
        d = ip.cell(f"%aria2 add {server.url('data.bin')} --wait").value
    finally:
        server.stop()
    assert d.status == "complete" and d.path == str(downloads / "data.bin")
    assert sha256(downloads / "data.bin") == digest
    assert package_version("aria2")  # the release's aria2, put in by colabmagic's installer
    ip.cell("%aria2 stop")
