"""One sync of a mountpoint at a time, machine-wide: the foreground ``%%drive_sync`` and the background syncer.

Two flushes of one mount at once would each see the other's uploads as
theirs, and a remount by one would pull the mount from under the other. The
lock is an ``flock`` on a file named after the mountpoint under
``/run/colabmagic`` (the colabmagic home when /run is not writable), so it
holds across kernels and processes and is released when its holder dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ...system import paths

RUNTIME_ROOT = Path("/run/colabmagic")


class LockTimeout(TimeoutError):
    """Another sync of the same mountpoint kept the lock past the deadline."""


def lock_path(mountpoint: str) -> Path:
    name = hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    try:
        RUNTIME_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        folder = RUNTIME_ROOT
        if not os.access(folder, os.W_OK):
            raise PermissionError(str(folder))
    except OSError:
        folder = paths.subdir("drive")
    return folder / f"drive-sync-{name}.lock"


@contextmanager
def flush_lock(mountpoint: str, deadline: float) -> Iterator[None]:
    """Hold the mountpoint's sync lock; wait for it until ``deadline`` (time.monotonic), then LockTimeout."""
    fd = os.open(lock_path(mountpoint), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"another sync of {mountpoint} (the background syncer, or another kernel) "
                                      "was still running when the timeout ran out")
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock
