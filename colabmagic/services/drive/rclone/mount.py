"""The rclone mount's lifecycle: start it supervised, find it, stop it, and clear a dead one.

``rclone mount`` runs in the foreground under the keeper (through launch.py,
so a restart after rclone was killed first clears the dead mount it left),
with its rc API on a free loopback port and its write-back cache under
``$COLABMAGIC_HOME/drive/cache``. A mount that cannot start leaves its
mountpoint guarded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from ....errors import ColabMagicError, ServiceError
from ....system import daemon_environment, installer, probes, supervisor
from .. import tracking, writers
from ..backend import Progress
from ..config import DriveConfig
from ..records import MountRecord
from .binary import binary
from .rc import drive_dir, htpasswd, rc_call
from .remote import local_path, remote_and_config

MOUNT_SERVICE = "drive-rclone"
LAUNCHER = str(Path(__file__).with_name("launch.py"))
# Go's garbage collector for the mount: bazil/fuse gives every FUSE read a fresh buffer (128 KiB), so
# reading 1 GiB through the mount allocates 1 GiB, and with Go's default (GOGC=100: collect each time the
# heap doubles over a small live heap) rclone spent about 1.4 s of CPU serving it. GOGC=400 collects a
# quarter as often: about 1.0 s, for some 100 MB more peak memory (120 -> 220 MB measured). Every read
# through the mount gains, the sync's own read-back of what a cell wrote included.
GO_RUNTIME = {"GOGC": "400"}


def cache_dir() -> Path:
    path = drive_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def service(mountpoint: str) -> Optional[supervisor.Service]:
    """The supervised rclone mount of ``mountpoint``, or None."""
    svc = supervisor.adopt(MOUNT_SERVICE)
    if svc is None or MountRecord.of(svc).mountpoint != mountpoint:
        return None
    return svc


def _check_mountpoint(mp: str) -> None:
    """Refuse a mountpoint rclone must not mount over; detach a dead mount left there."""
    os.makedirs(mp, exist_ok=True)
    writers.unguard(mp)
    if writers.immutable(mp) and not tracking.is_mounted(mp):
        raise ColabMagicError(f"{mp} is immutable (chattr +i), and not by colabmagic's guard (it is not empty "
                              f"or has another mode): check what is in it, then chattr -i {mp}")
    if tracking.mount_alive(mp):
        raise ColabMagicError(f"something else is mounted at {mp}; unmount it or choose another --path")
    lazy_unmount(mp)  # a dead mount (rclone was killed) is detached
    if os.listdir(mp):
        raise ColabMagicError(f"{mp} is not empty; rclone would hide those files. Move them away first.")


def _argv(config: DriveConfig, port: int, progress: Optional[Progress]) -> List[str]:
    remote, conf = remote_and_config(config)
    argv = [
        binary(config, progress), "mount", remote, config.mountpoint, *conf,
        "--cache-dir", str(cache_dir()),
        "--vfs-cache-mode", "writes",
        "--vfs-write-back", config.write_back,
        # Change detection without the slow hashes (ones rclone computes by reading the file: a
        # local folder's, SFTP's): else each upload is followed by one more full read of the file
        # on the remote. rclone's docs recommend it there; Google Drive's md5 comes with its
        # listing, so it stays in Drive's fingerprints.
        "--vfs-fast-fingerprint",
        "--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-htpasswd", str(htpasswd()),
        "-v",
    ]
    if local_path(remote):
        # From a local cache to a local folder rclone's post-upload check hashes the same bytes
        # in memory twice (the local backend hashes what it writes as it writes it): it can
        # find nothing, and costs two md5 passes. The sync's own check reads the file back.
        argv.append("--ignore-checksum")
    if config.bwlimit:
        argv += ["--bwlimit", config.bwlimit]
    return argv


def start(config: DriveConfig, label: str, progress: Optional[Progress] = None) -> None:
    """Start ``rclone mount`` of ``config`` and return once the mount and its rc API answer."""
    mp = config.mountpoint
    _check_mountpoint(mp)
    port = probes.free_port()
    argv = _argv(config, port, progress)
    # Through launch.py, so a restart after rclone was killed clears the dead mount it left.
    spec = supervisor.ServiceSpec(
        name=MOUNT_SERVICE,
        argv=[sys.executable, "-I", LAUNCHER, mp] + argv,
        env={**_fuse2_path(), **GO_RUNTIME},
        restart=True,
        stop_timeout=20.0,
        info=MountRecord(rc_port=port, mountpoint=mp, remote=label).to_info(),
    )

    def ready() -> bool:
        if not tracking.mount_alive(mp) or not probes.port_open(port):
            return False
        rc_call(port, "rc/noop", timeout=2)  # raises until the API answers (and accepts our auth)
        return True

    try:
        supervisor.start(spec, ready=ready, timeout=config.mount_timeout)
    except ServiceError:
        writers.guard(mp)
        raise


def stop(mountpoint: str) -> None:
    """Stop the mount (rclone keeps not-yet-uploaded files in its cache) and detach what is left."""
    svc = supervisor.adopt(MOUNT_SERVICE)
    if svc is not None:
        svc.stop()
    lazy_unmount(mountpoint)


def _fuse2_path() -> Dict[str, str]:
    """rclone 1.62 and later run ``fusermount3`` by that name (bazil/fuse issue 298), which fuse 2
    (Colab's and Kaggle's ``fuse`` package) does not have. Its ``fusermount`` speaks the same
    protocol, so with fuse 2 alone rclone gets a private folder, first on its PATH, whose
    ``fusermount3`` is a link to it. The system's /bin is never changed."""
    if shutil.which("fusermount3") or os.access("/bin/fusermount3", os.X_OK):
        return {}
    tool = installer.fusermount()
    if tool is None:
        return {}
    shim = drive_dir() / "fuse2-bin"
    shim.mkdir(mode=0o700, exist_ok=True)
    link = shim / "fusermount3"
    if not (link.is_symlink() and os.readlink(link) == tool):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(tool)
    path = daemon_environment.minimal().get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {"PATH": f"{shim}:{path}"}


def lazy_unmount(mountpoint: str) -> None:
    """Detach whatever FUSE file system is still mounted at ``mountpoint`` (a dead one included)."""
    if not tracking.is_mounted(mountpoint):
        return
    tool = installer.fusermount()
    if tool:
        subprocess.run([tool, "-u", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
        if tracking.is_mounted(mountpoint):
            subprocess.run([tool, "-u", "-z", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
    if tracking.is_mounted(mountpoint):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
