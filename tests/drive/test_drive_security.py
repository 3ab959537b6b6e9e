"""%drive_sync's secrets and inputs: rc API behind auth, no secret on a command line, bad values refused."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict

import pytest

from colabmagic.errors import BadInputError
from colabmagic.services import drive
from colabmagic.services.drive import rclone
from colabmagic.system import secrets, supervisor


def test_the_rc_api_needs_auth_and_no_secret_is_on_a_command_line(ip: Any, rclone_env: Dict[str, Path]) -> None:
    ip.cell(f"%config DriveMagics.remote = {str(rclone_env['remote'])!r}")
    ip.cell(f"%config DriveMagics.mountpoint = {str(rclone_env['mountpoint'])!r}")
    ip.cell("%config DriveMagics.backend = 'rclone'")
    ip.cell("%%drive_sync\nx = 1")
    svc = supervisor.adopt(rclone.MOUNT_SERVICE)
    assert svc is not None and svc.pid
    port = int(svc.info["rc_port"])
    request = urllib.request.Request(f"http://127.0.0.1:{port}/vfs/stats", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert "diskCache" in rclone.rc_call(port, "vfs/stats")  # with our credentials it answers
    password = secrets.load("drive_rc")
    assert password is not None
    cmdline = Path(f"/proc/{svc.pid}/cmdline").read_bytes().decode()
    assert password.reveal() not in cmdline
    assert password.reveal() not in svc.log.read_text()
    htpasswd = rclone.drive_dir() / "rc.htpasswd"
    for path in (htpasswd, secrets.secret_path("drive_rc")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_service_account_file_becomes_a_private_rclone_config(tmp_path: Path) -> None:
    sa = tmp_path / "sa.json"
    sa.write_text(json.dumps({"type": "service_account", "client_email": "x@y.iam.gserviceaccount.com"}))
    config = drive.DriveConfig(backend="rclone", remote="gdrive:backups/run1", credentials=str(sa),
                               mountpoint=str(tmp_path / "mnt")).resolved()
    remote, args = rclone.remote_and_config(config)
    assert remote == "colabmagic_drive:backups/run1"
    assert args[0] == "--config"
    conf = Path(args[1])
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    assert "type = drive" in text and f"service_account_file = {sa}" in text
    assert not any("private_key" in a for a in args)


@pytest.mark.parametrize(
    "line, message",
    [
        ("--remote=-x --backend rclone", "refusing remote"),
        ("--backend rclone --remote " + "A" * 5000, "too long"),
        ("--backend rclone --remote /tmp --path /tmp/" + "B" * 300, "too long"),
        ("--backend rclone --remote /tmp --timeout 0", "timeout must be positive"),
    ],
)
def test_bad_values_are_refused_before_anything_starts(ip: Any, line: str, message: str) -> None:
    c = ip.cell(f"%drive_sync {line}", check=False)
    assert isinstance(c.error, BadInputError) and message in c.error.message
    assert len(c.error.message) < 200  # one readable line, even for a huge value
    assert supervisor.adopt(rclone.MOUNT_SERVICE) is None


def test_write_back_and_bwlimit_are_checked(tmp_path: Path) -> None:
    base = drive.DriveConfig(backend="rclone", remote=str(tmp_path), mountpoint=str(tmp_path / "m"))
    with pytest.raises(BadInputError):
        base.with_(write_back="5 minutes; rm").resolved()
    with pytest.raises(BadInputError):
        base.with_(bwlimit="--fast").resolved()
    assert base.with_(write_back="10m", bwlimit="8M").resolved().write_back == "10m"
    assert not os.path.exists(tmp_path / "m")
