"""How much of a file waits in the page cache to reach the disk: Linux's cachestat(2) (6.5 and later).

``unwritten(path)`` is nr_dirty + nr_writeback of the whole file, in bytes, or None where the kernel
has no cachestat (the tests that use it skip then, as on a tmpfs folder: see ``cachestat_works``).
"""

from __future__ import annotations

import ctypes
import os
from typing import Optional, Union

SYS_CACHESTAT = 451  # the same number on x86_64 and arm64 (the generic table), Linux 6.5+
PAGE = os.sysconf("SC_PAGE_SIZE")


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]  # len 0: to the end of the file


class _Stat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


_libc = ctypes.CDLL(None, use_errno=True)


def unwritten(path: Union[str, os.PathLike[str]]) -> Optional[int]:
    """Bytes of ``path`` in the page cache not yet on disk (dirty or being written), or None (no cachestat)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        stat = _Stat()
        if _libc.syscall(SYS_CACHESTAT, fd, ctypes.byref(_Range(0, 0)), ctypes.byref(stat), 0) != 0:
            return None
        return int(stat.nr_dirty + stat.nr_writeback) * PAGE
    finally:
        os.close(fd)


def cachestat_works(folder: Union[str, os.PathLike[str]]) -> bool:
    """cachestat answers, and ``folder`` is on a file system that writes back: a file just written
    has dirty pages and none once fsynced (tmpfs never has any, so there is no writeback to see)."""
    probe = os.path.join(folder, ".cachestat-probe")
    try:
        with open(probe, "wb") as fh:
            fh.write(os.urandom(1 << 16))
            fh.flush()
            dirty = unwritten(probe)
            os.fsync(fh.fileno())
        return bool(dirty) and unwritten(probe) == 0
    finally:
        os.unlink(probe)
