"""A sync's first step: the mount is up, and what changed under it since the last verified sync.

A mount whose daemon died is brought back first. One left unmounted (and
guarded) by ``--unmount`` cannot have changed: it is mounted again and there
is nothing to flush. Otherwise the tree is walked (under the sync's deadline)
and compared with the last verified snapshot (tracking.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from ...errors import ColabMagicError
from . import status, tracking, writers
from .backend import DriveBackend
from .config import DriveConfig
from .report import DriveSyncTimeout


def bring_back(cfg: DriveConfig, backend: DriveBackend, unmount: bool) -> bool:
    """Make sure the mount is up for a sync. True when it was unmounted and guarded, so nothing could
    change there, and it has been mounted again (nothing left to sync)."""
    mp = cfg.mountpoint
    if not backend.mounted() and tracking.is_mounted(mp) and not tracking.mount_alive(mp) \
            and status.read_record().get("mountpoint") == mp:
        backend.remount()  # our mount died (its daemon was killed): bring it back, then sync
    if backend.mounted():
        return False
    if writers.guarded(mp) and not unmount:
        backend.remount()
        writers.resume_remembered(mp)
        status.write_record(cfg, backend)
        return True
    raise ColabMagicError(
        f"nothing is mounted at {str(mp)!r}: use the cell form %%drive_sync (it mounts first) "
        "or colabmagic.services.drive.mount(config)"
    )


@dataclass
class Scan:
    """What changed: the tracker, the tree as the scan found it, and the changes since the last snapshot."""

    tracker: tracking.Tracker
    now: tracking.Snapshot
    changes: List[tracking.Change]


def tracker_for(cfg: DriveConfig, backend: DriveBackend) -> tracking.Tracker:
    """The snapshots of this mount (its key, the tracked subfolders, what the backend skips)."""
    return tracking.Tracker(cfg.key, cfg.mountpoint, backend.skip(), cfg.tracked)


def scan(cfg: DriveConfig, backend: DriveBackend, deadline: float) -> Scan:
    """Walk the mount and compare it with the last verified snapshot; DriveSyncTimeout past ``deadline``."""
    tracker = tracker_for(cfg, backend)
    baseline = tracker.baseline()
    try:
        now = tracker.scan(deadline)
    except TimeoutError as err:
        raise DriveSyncTimeout(f"drive_sync timed out: {err}")
    return Scan(tracker, now, tracking.diff(baseline, now))


def settled(before: tracking.Snapshot, after: tracking.Snapshot) -> tracking.Snapshot:
    """The snapshot to save after a sync: ``after`` (the mount session and inodes as they are now) only for
    files that did not change while the sync ran. A file written, created or deleted during the flush was
    not verified, so it keeps its old entry (or none) and counts as changed next time."""
    files = {}
    for path, stat in before.files.items():
        now = after.files.get(path)
        files[path] = now if now is not None and now[:2] == stat[:2] else stat
    return tracking.Snapshot(files, after.session, after.taken_at)
