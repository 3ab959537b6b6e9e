"""The rclone flush: every upload waiting in the mount's queue made to start now, until the queue is empty.

Only rclone's public rc API, with the mount up: ``vfs/queue`` lists the files
waiting to upload, ``vfs/queue-set-expiry`` makes each upload now, and the
flush ends when the queue is empty and ``vfs/stats`` shows nothing in
progress. Uploads that keep failing are named with rclone's reason, read
from its log.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from ....errors import ColabMagicError
from ..backend import FileFacts, FlushFailed, FlushTimeout, MayUpload

if TYPE_CHECKING:
    from . import RcloneBackend

RELEASE_WAIT = 10.0  # seconds a flush waits for rclone to take the last close of a file just written
FAIL_AFTER_TRIES = 3  # an upload that failed this often, with nothing else in flight, is reported
NOW = -1e9  # vfs/queue-set-expiry: "a large negative number" uploads as soon as possible
UPLOAD_FAILED = re.compile(
    r"ERROR : (?P<name>.+?): vfs cache: failed to upload try #(?P<try>\d+), will retry in \S+: (?P<why>.*)$"
)


def stats(backend: RcloneBackend) -> Optional[Dict[str, Any]]:
    """``vfs/stats``' diskCache, or None (no mount, or rclone still reading its cache back)."""
    try:
        found = backend.rc("vfs/stats", timeout=10).get("diskCache")
    except Exception:  # refused, timed out (rclone holds it while loading), or no mount
        return None
    return found if isinstance(found, dict) and "uploadsQueued" in found else None


def pending(backend: RcloneBackend) -> int:
    """Uploads queued or running (0 when rclone does not say)."""
    found = stats(backend)
    return int(found["uploadsQueued"]) + int(found["uploadsInProgress"]) if found else 0


def expedite(backend: RcloneBackend, ready: Optional[MayUpload] = None) -> List[Dict[str, Any]]:
    """vfs/queue, with every item not yet uploading moved to "upload now" (of the files the sync
    reads through the mount, only those ``ready`` says it holds open or has read)."""
    queue = backend.rc("vfs/queue").get("queue") or []
    for item in queue:
        if item.get("uploading") or float(item.get("expiry", 0)) <= 0:
            continue
        if ready is not None and not ready(str(item.get("name", ""))):
            continue
        try:
            backend.rc("vfs/queue-set-expiry", {"id": item["id"], "expiry": NOW})
        except ColabMagicError:
            pass  # it started (or finished) meanwhile
    return queue


def flush(backend: RcloneBackend, deadline: float, expected: Optional[Mapping[str, FileFacts]] = None,
          algo: Optional[str] = None, ready: Optional[MayUpload] = None) -> None:
    """Upload everything waiting in rclone's queue now, and return once it is empty.

    The release race: the kernel hands a file's last close to rclone after
    ``close()`` has returned, and only then does rclone queue the file (its
    first write after an open took it off the queue). So a file the sync
    expects that has not been in the queue is waited for (up to
    RELEASE_WAIT) unless the remote already holds it as expected (uploaded
    by the write-back before the sync). ``expected`` may still be being
    read (the sync reads them while this runs, reading.py); ``ready`` says which
    queued files may upload now (see expedite).
    """
    svc = backend.service()
    if svc is None:
        raise FlushFailed(f"the rclone mount at {backend.config.mountpoint} is not running", {})
    backend.rc("core/bwlimit", {"rate": backend.config.bwlimit or "off"})
    log_start = max(0, svc.log.stat().st_size - 256 * 1024) if svc.log.exists() else 0
    waiting = set(expected or {})
    release_until = min(deadline, time.monotonic() + RELEASE_WAIT)
    total = 0
    queue: List[Dict[str, Any]] = []
    tries_before: Dict[str, int] = {}
    want: Optional[Dict[str, Any]] = None
    while True:
        try:
            queue = expedite(backend, ready)
            found = stats(backend)
        except (ColabMagicError, OSError) as err:
            if not svc.child_alive():
                raise FlushFailed("rclone stopped while flushing", {}, details=svc.log_tail())
            found, why = None, str(err)
            if time.monotonic() > deadline:
                raise FlushTimeout(f"rclone's API did not answer within the timeout ({why})", {})
        waiting -= {item["name"] for item in queue}
        busy = bool(queue) or found is None or int(found["uploadsQueued"]) + int(found["uploadsInProgress"]) > 0
        if not busy:
            if waiting:
                if want is None:
                    # Waits for files still being read. One held open by that reading is queued only
                    # once it is closed: look at the queue again, with the full wait from now.
                    want = {p: (expected or {}).get(p) for p in waiting}
                    release_until = max(release_until, min(deadline, time.monotonic() + RELEASE_WAIT))
                    continue
                present = backend.remote_files(sorted(waiting), algo, deadline)
                matched = {p for p in waiting if p in present and present[p] == want.get(p)}
                backend.confirmed.update({p: present[p] for p in matched})
                waiting -= matched
            if not waiting or time.monotonic() >= release_until:
                return
        total = max(total, len(queue))
        if backend.progress is not None and queue:
            backend.progress(1 - len(queue) / total, f"{len(queue)} file(s) still uploading")
        failures = upload_failures(svc.log, log_start)
        # Stuck: failed again during this flush, past the limit (tries left over from an earlier, failed
        # flush alone do not count: the cause may be fixed, and rclone tries again once expedited).
        for item in queue:
            tries_before.setdefault(item["name"], int(item.get("tries", 0)))
        stuck = [i for i in queue if not i.get("uploading") and int(i.get("tries", 0)) >= FAIL_AFTER_TRIES
                 and int(i.get("tries", 0)) > tries_before[i["name"]]]
        if queue and len(stuck) == len(queue):
            raise FlushFailed(
                f"uploads to {backend.remote_label} failed",
                {i["name"]: "upload failed: " + failures.get(i["name"], "rclone could not upload it")
                 for i in queue},
            )
        if time.monotonic() > deadline:
            still = sorted({i["name"] for i in queue} | waiting)
            raise FlushTimeout(
                f"the upload queue did not drain within the timeout ({len(still)} file(s) pending)",
                {p: ("still uploading when the timeout ran out"
                     + (f"; last error: {failures[p]}" if p in failures else "")) for p in still},
            )
        time.sleep(0.1)


def upload_failures(log: Path, since: int) -> Dict[str, str]:
    """file -> rclone's last reason for a failed upload, from its log after byte ``since``."""
    try:
        with open(log, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return {}
    found: Dict[str, str] = {}
    for line in text.splitlines():
        m = UPLOAD_FAILED.search(line)
        if m:
            found[m.group("name")] = m.group("why").replace(
                "vfs cache: failed to transfer file from cache to remote: ", "")
    return found
