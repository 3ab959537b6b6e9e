"""A sync's flush step: writers out of the way, the changed files read, the backend's flush, the mount back.

The order matters. aria2 downloads into the mount are paused and files held
open for writing are named before anything else. The changed files are read
through the mount (reading.py): where the backend ``reads_while_flushing``
(rclone) while the uploads run, each opened before its upload is started,
else (Colab, whose flush unmounts) all before the flush. A flush that
unmounted leaves the bare mountpoint guarded, and the mount comes back unless
``--unmount``, even when the flush failed or timed out. An interrupted flush
of a mount that ``stays_mounted`` brings the mount back before passing the
interrupt on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ...errors import ColabMagicError
from . import tracking, writers
from .backend import DriveBackend, FlushFailed, Progress
from .config import DriveConfig
from .reading import Reading, hash_choice
from .scan import Scan


class WritersBusy(ColabMagicError):
    """Files under the mountpoint are open for writing (the background syncer tries again shortly)."""


@dataclass
class Flushed:
    """What the flush step leaves for the verification and the report."""

    error: Optional[FlushFailed]  # the flush failed (or timed out): why, and which files
    mounted_after: bool  # the mount is up again
    post: Optional[tracking.Snapshot]  # the tree once mounted again, to save the snapshot with
    reading: Reading  # the changed files' sizes and checksums, maybe still being read (the caller closes it)
    algo: Optional[str]  # the checksum read
    method: str  # how the report names the verification
    paused: List[str]  # aria2 downloads paused for the flush


def flush(cfg: DriveConfig, backend: DriveBackend, found: Scan, unmount: bool, deadline: float,
          progress: Optional[Progress]) -> Flushed:
    """Pause the writers, read the changed files, flush, and remount unless ``unmount``."""
    mp = cfg.mountpoint
    changes = found.changes
    aria, paused = writers.pause_aria2(mp)
    flushed = False
    try:
        _refuse_writers(mp, aria)
        algo, method = hash_choice(backend, cfg, deadline)
        overlap = backend.reads_while_flushing
        reading = Reading(mp, [c.path for c in changes if c.kind != "deleted"], algo, deadline, direct=overlap)
        try:
            if not overlap:
                reading.wait(changes, progress)
            error, mounted_after, post = _flush_and_remount(
                backend, cfg, found.tracker, unmount, deadline, reading, algo)
        except BaseException:
            reading.close()
            raise
        flushed = True
    finally:
        # Left unmounted (--unmount stops rclone after the verification), the downloads stay paused
        # (they would fail to land) until the next mount.
        if aria is not None and tracking.is_mounted(mp) and not (unmount and flushed):
            writers.resume_aria2(aria, paused)
        elif paused:
            writers.remember_paused(mp, paused)
    return Flushed(error, mounted_after, post, reading, algo, method, paused)


def _refuse_writers(mp: str, aria: object) -> None:
    """WritersBusy naming what still has files under ``mp`` open for writing (the paused aria2 aside)."""
    aria_pid = getattr(aria, "pid", None) if aria is not None else None
    holders = [h for h in writers.open_for_writing(mp) if h[0] != aria_pid]
    if holders:
        listing = ", ".join(f"{path} (pid {pid} {prog})" for pid, prog, path in holders[:10])
        raise WritersBusy(f"files under {mp} are still open for writing; close them first: {listing}")


def _flush_and_remount(
    backend: DriveBackend, cfg: DriveConfig, tracker: tracking.Tracker, unmount: bool, deadline: float,
    reading: Reading, algo: Optional[str],
) -> Tuple[Optional[FlushFailed], bool, Optional[tracking.Snapshot]]:
    """Flush; where that unmounted (Colab), guard the bare mountpoint and remount unless told not to.
    A mount that ``stays_mounted`` stays up (the sync stops it after verifying, for ``--unmount``).

    A kernel whose working folder is inside the mount steps out while it may
    be unmounted (a busy mount cannot be cleanly unmounted) and back in after.
    """
    mp = cfg.mountpoint
    try:
        cwd: Optional[str] = os.getcwd()
    except OSError:
        cwd = None
    inside = cwd is not None and (cwd == mp or cwd.startswith(mp.rstrip("/") + "/"))
    if inside:
        os.chdir(os.path.dirname(mp))
    flush_error: Optional[FlushFailed] = None
    mounted_after = False
    post: Optional[tracking.Snapshot] = None
    try:
        ready = reading.may_upload if backend.reads_while_flushing else None
        backend.flush(deadline, reading, algo, ready=ready)
    except FlushFailed as err:
        flush_error = err
    except BaseException:
        # Interrupted (KeyboardInterrupt): rclone's pending files stay in its cache; bring the
        # mount back before passing the interrupt on. A Colab flush may still be running in its
        # thread, so that mountpoint is only guarded.
        if not tracking.is_mounted(mp):
            writers.guard(mp)
        if backend.stays_mounted and not unmount:
            backend.remount()
            if inside and cwd is not None and os.path.isdir(cwd):
                os.chdir(cwd)
        raise
    if not tracking.is_mounted(mp):
        writers.guard(mp)
    if not unmount:
        backend.remount()
        mounted_after = backend.mounted()
        if mounted_after:
            post = tracker.scan()
            if inside and cwd is not None and os.path.isdir(cwd):
                os.chdir(cwd)
    return flush_error, mounted_after, post
