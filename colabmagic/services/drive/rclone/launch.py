"""Start ``rclone mount`` after clearing a dead FUSE mount left at the mountpoint (run by the keeper).

When rclone is killed (SIGKILL, OOM) its mount stays in the mount table
with the connection gone ("Transport endpoint is not connected"), and a
new ``rclone mount`` there refuses with "directory already mounted". So the
keeper restarts this script, which detaches such a dead mount (and only a
dead one: a live mount is left alone) and then becomes rclone itself
(``exec``: same pid, still in the foreground). Standard library only; run as
``python -I launch.py MOUNTPOINT RCLONE ARGS...``.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from typing import List

DEAD = (errno.ENOTCONN, errno.EIO, errno.ECONNABORTED)


def _mounted(path: str) -> bool:
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 4 and parts[4].replace("\\040", " ").replace("\\134", "\\") == target:
                    return True
    except OSError:
        return False
    return False


def clear_dead_mount(path: str) -> bool:
    """Detach the mount at ``path`` if its file system no longer answers; True if one was cleared."""
    if not _mounted(path):
        return False
    try:
        os.stat(path)
        return False  # alive: someone serves it
    except OSError as err:
        if err.errno not in DEAD:
            return False
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool:
        subprocess.run([tool, "-u", "-z", path], stdin=subprocess.DEVNULL, capture_output=True)
    if _mounted(path):
        subprocess.run(["umount", "-l", path], stdin=subprocess.DEVNULL, capture_output=True)
    print(f"[colabmagic] detached a dead mount at {path} before starting rclone", flush=True)
    return True


def main(argv: List[str]) -> None:
    mountpoint, command = argv[0], argv[1:]
    clear_dead_mount(mountpoint)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
