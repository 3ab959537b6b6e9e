"""``%drive_sync``'s service: make "saved to Drive" mean "verified on the remote".

``mount(DriveConfig(...))`` mounts (Colab's Drive, or ``rclone mount`` of
any remote) and starts tracking changes; ``sync(config)`` flushes every
pending write, verifies each changed file on the remote by checksum (or
size, said so), remounts, and returns a ``SyncReport`` — or raises
``DriveSyncError`` naming the files that did not make it. ``current()`` is
what ``_colabmagic.drive`` shows.
"""

from __future__ import annotations

from .config import DriveConfig
from .report import DriveSyncError, DriveSyncTimeout, FileResult, SyncReport
from .status import DriveMount, current, guards
from .sync import mount, sync, unmount

__all__ = [
    "DriveConfig",
    "DriveMount",
    "DriveSyncError",
    "DriveSyncTimeout",
    "FileResult",
    "SyncReport",
    "current",
    "guards",
    "mount",
    "sync",
    "unmount",
]
