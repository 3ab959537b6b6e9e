"""One sync, backend-independent, in four steps: scan, flush, verify, report.

1. scan.py: the mount is up (a dead one brought back; one left unmounted
   and guarded is mounted again, nothing changed), and what changed under it
   since the last verified sync.
2. flushing.py: writers paused or named, the changed files read through the
   mount (reading.py), the backend's flush, the mount back unless ``--unmount``.
3. verify.py: each changed file read back from the remote and judged.
4. report (here): a ``SyncReport``, kept in the record (status.py); the
   snapshot moves forward only when every file was confirmed, so a failed
   file is checked again next time; else DriveSyncError naming the files.

What differs between backends is said by ``DriveBackend`` (backend.py). One
sync of a mountpoint runs at a time (lock.py).
"""

from __future__ import annotations

import time
from typing import Any, Optional

from . import status, tracking, writers
from .backend import DriveBackend, Progress, backend_for
from .config import DriveConfig
from .flushing import Flushed, flush
from .lock import LockTimeout, flush_lock
from .report import DriveSyncError, DriveSyncTimeout, SyncReport, failure_message, notes
from .scan import Scan, bring_back, scan, settled, tracker_for
from .status import DriveMount, current
from .verify import Verified, verify

BACK_NOTE = "it was unmounted (and guarded), so nothing could change; mounted again"


def mount(config: DriveConfig, progress: Optional[Progress] = None, credentials: Any = None) -> DriveMount:
    """Mount (if not mounted yet) and start tracking changes from here."""
    cfg = config.resolved()
    backend = backend_for(cfg, progress, credentials)
    if not backend.mounted():
        backend.mount()
    writers.resume_remembered(cfg.mountpoint)
    tracker_for(cfg, backend).baseline()
    status.write_record(cfg, backend)
    return current() or DriveMount(cfg.backend, cfg.mountpoint, backend.remote_label, backend.mounted())


def unmount(config: DriveConfig, progress: Optional[Progress] = None, credentials: Any = None) -> SyncReport:
    """Flush, verify and leave the mountpoint unmounted (guarded)."""
    return sync(config, unmount=True, progress=progress, credentials=credentials)


def sync(
    config: DriveConfig,
    unmount: bool = False,
    progress: Optional[Progress] = None,
    credentials: Any = None,
) -> SyncReport:
    """Flush every change under the mountpoint to the remote, verify it there, and remount.

    Returns a SyncReport; raises DriveSyncError (``.report`` attached)
    naming every file that did not reach the remote, DriveSyncTimeout when
    the timeout ran out first. One sync of a mountpoint runs at a time
    (lock.py): this waits for another (the background syncer's) to end.
    """
    cfg = config.resolved()
    try:
        with flush_lock(cfg.mountpoint, time.monotonic() + cfg.timeout):
            return _sync(cfg, unmount, progress, credentials)
    except LockTimeout as err:
        raise DriveSyncTimeout(f"drive_sync timed out: {err}")


def _sync(cfg: DriveConfig, unmount: bool, progress: Optional[Progress], credentials: Any) -> SyncReport:
    """The four steps, under the mountpoint's lock: scan, flush, verify, report."""
    backend = backend_for(cfg, progress, credentials)
    started = time.monotonic()
    deadline = started + cfg.timeout
    if bring_back(cfg, backend, unmount):
        return _unchanged(cfg, backend, started, note=BACK_NOTE)
    status.write_record(cfg, backend)
    found = scan(cfg, backend, deadline)
    if not found.changes and not unmount and backend.pending_uploads() == 0:
        return _unchanged(cfg, backend, started)
    flushed = flush(cfg, backend, found, unmount, deadline, progress)
    checked = verify(cfg, backend, found.changes, flushed, deadline, progress)
    if unmount and backend.stays_mounted and tracking.is_mounted(cfg.mountpoint):
        backend.stop_mount()  # verified (or not) through the mount's own API: now it can go
        writers.guard(cfg.mountpoint)
    return _report(cfg, backend, started, found, flushed, checked)


def _unchanged(cfg: DriveConfig, backend: DriveBackend, started: float, note: str = "") -> SyncReport:
    """The report of a sync that found nothing to flush."""
    report = SyncReport(cfg.backend, cfg.mountpoint, backend.remote_label, time.monotonic() - started, (), "",
                        True, note=note)
    status.write_record(cfg, backend, last_sync=report.summary())
    return report


def _report(cfg: DriveConfig, backend: DriveBackend, started: float, found: Scan, flushed: Flushed,
            checked: Verified) -> SyncReport:
    """The SyncReport, kept in the record; the snapshot saved when every file was confirmed, else the
    files that were not raised as DriveSyncError (DriveSyncTimeout when the timeout ran out)."""
    report = SyncReport(cfg.backend, cfg.mountpoint, backend.remote_label, time.monotonic() - started,
                        tuple(checked.results), checked.method, flushed.mounted_after,
                        note=notes(cfg.tracked, len(flushed.paused), flushed.mounted_after),
                        timed_out=checked.timed_out, errors=tuple(checked.errors))
    status.write_record(cfg, backend, last_sync=report.summary())
    if report.ok:
        if flushed.post is not None:
            found.tracker.save(settled(found.now, flushed.post))
        else:
            found.tracker.save(tracking.Snapshot(found.now.files, "", time.time()))
        return report
    head, details = failure_message(report)
    cls = DriveSyncTimeout if checked.timed_out else DriveSyncError
    raise cls(head, report=report, details=details)
