"""What the keeper's write-behind touches: only regular files its daemon has open for writing.

A stand-in daemon (a real process) holds three things open: a file it writes, a file it only reads
(written earlier by someone else, still dirty), and a FIFO it writes to. One write_behind() look must
start the writeback of the first, leave the second's dirty pages alone (they are not the daemon's
writing), and pass over the FIFO without waiting on it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.pagecache import cachestat_works, unwritten

from colabmagic.system import keeper

MB = 1 << 20

DAEMON = r"""
import os, sys
written, read_only, fifo = sys.argv[1:4]
w = open(written, "wb")
w.write(os.urandom(4 << 20)); w.flush()
r = open(read_only, "rb")
f = os.open(fifo, os.O_RDWR)  # a FIFO held for writing (O_RDWR: open does not wait for a reader)
print("ready", flush=True)
sys.stdin.read()
"""


def _still_dirty(path: Path) -> int:
    left = unwritten(path)
    assert left is not None
    return left


def test_write_behind_starts_only_the_daemons_own_writing(tmp_path: Path) -> None:
    if not cachestat_works(tmp_path):
        pytest.skip("needs cachestat(2) (Linux 6.5 or later) and a disk file system under the test folder")
    written, read_only, fifo = tmp_path / "download.bin", tmp_path / "theirs.bin", tmp_path / "pipe"
    read_only.write_bytes(os.urandom(4 * MB))  # dirty, and not the daemon's to write
    os.mkfifo(fifo)
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(written), str(read_only), str(fifo)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None and daemon.stdout.readline().strip() == "ready"
        assert _still_dirty(written) >= 3 * MB and _still_dirty(read_only) >= 3 * MB

        libc = ctypes.CDLL(None, use_errno=True)
        libc.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        began = time.monotonic()
        seen = keeper.write_behind(daemon.pid, libc, -1)
        assert time.monotonic() - began < 5, "write_behind waited on something"
        assert seen > 4 * MB  # the daemon's bytes written so far (wchar), for the next look

        deadline = time.monotonic() + 10
        while _still_dirty(written) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _still_dirty(written) == 0, "the daemon's download was not written behind"
        assert _still_dirty(read_only) >= 3 * MB, "a file the daemon only reads was pushed to disk"
    finally:
        if daemon.stdin:
            daemon.stdin.close()
        daemon.wait(timeout=10)
