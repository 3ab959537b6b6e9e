"""Opt-in live checks of %drive_sync against real Google Drive (skipped unless set up for it).

- rclone: set COLABMAGIC_LIVE_DRIVE_REMOTE to a remote folder in your rclone config
  (e.g. ``gdrive:colabmagic-live``) and, if it is not rclone's default config,
  COLABMAGIC_LIVE_RCLONE_CONFIG. The test writes, rewrites and deletes files there.
- colab: run on hosted Colab with Drive authorized (``google.colab.auth.authenticate_user()``)
  and COLABMAGIC_LIVE_COLAB_DRIVE=1; it writes under MyDrive/colabmagic-live.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from colabmagic.services import drive
from colabmagic.system import environment

pytestmark = pytest.mark.live


def test_live_rclone_remote_is_verified_by_its_own_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = os.environ.get("COLABMAGIC_LIVE_DRIVE_REMOTE")
    if not remote:
        pytest.skip("set COLABMAGIC_LIVE_DRIVE_REMOTE to an rclone remote folder to run this")
    monkeypatch.delenv("COLABMAGIC_OFFLINE", raising=False)
    conf = os.environ.get("COLABMAGIC_LIVE_RCLONE_CONFIG", "")
    mp = tmp_path / "mnt"
    config = drive.DriveConfig(backend="rclone", remote=remote, mountpoint=str(mp), write_back="5m",
                               rclone_config=conf, timeout=900)
    drive.mount(config)
    try:
        data = os.urandom(5 << 20)
        (mp / "live.bin").write_bytes(data)
        report = drive.sync(config)
        assert report.verified
        listing = subprocess.run(
            ["rclone", "lsjson", remote, "--hash", "--files-only"] + (["--config", conf] if conf else []),
            capture_output=True, text=True, check=True,
        ).stdout
        hashes = {i["Path"]: i.get("Hashes", {}) for i in json.loads(listing)}
        assert hashes["live.bin"].get("md5") == hashlib.md5(data).hexdigest()
        (mp / "live.bin").unlink()
        assert drive.sync(config).verified
    finally:
        drive.unmount(config)
        from colabmagic.services.drive import writers

        writers.unguard(str(mp))


def test_live_colab_drive_is_verified_by_the_drive_api(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (environment.is_hosted_colab() and os.environ.get("COLABMAGIC_LIVE_COLAB_DRIVE") == "1"):
        pytest.skip("runs on hosted Colab with COLABMAGIC_LIVE_COLAB_DRIVE=1")
    monkeypatch.delenv("COLABMAGIC_OFFLINE", raising=False)
    config = drive.DriveConfig(backend="colab", mountpoint="/content/drive", track="MyDrive/colabmagic-live")
    drive.mount(config)
    folder = Path("/content/drive/MyDrive/colabmagic-live")
    folder.mkdir(exist_ok=True)
    (folder / "live.bin").write_bytes(os.urandom(5 << 20))
    report = drive.sync(config)
    assert report.verified and report.method == "md5Checksum from the Drive API"
