"""Stand-in for hosted Colab's ``google.colab.drive``: ``mount`` and ``flush_and_unmount``.

It mirrors the behaviour of colabtools' real functions (same signatures,
same ValueError messages, same printed lines): a mountpoint with a space,
a symlink, a non-directory, a missing parent or existing files is refused;
``flush_and_unmount`` prints and returns when nothing is mounted, is slow,
and raises ``ValueError('flush_and_unmount failed')`` when its timeout runs
out. DriveFS is played by a local folder: writes land in a local content
cache (bind-mounted at the mountpoint, with the ``MyDrive`` folder as on
Colab) and reach "Drive" (another folder) only when flushed, like DriveFS's
delayed uploads.

Where ``google.colab`` is installed but this is not hosted Colab, the real
functions (colabtools google/colab/drive.py, commit 3c07d77, 2026-04) raise
NotImplementedError: ``mount`` without /var/colab/hostname (Kaggle's image,
built from Colab's, is such a place) or in Colab Enterprise;
``flush_and_unmount`` where /var/colab/mp exists. ``mount`` first asks the
browser for Drive access (``request_auth``); a user who declines gets
``MessageError`` from google.colab._message.

Environment (set by the test):
  COLABMAGIC_STANDIN_COLAB_HOST            hosted (default) | kaggle | enterprise | mp
  COLABMAGIC_STANDIN_DRIVE_AUTH            granted (default) | denied
  COLABMAGIC_STANDIN_DRIVE                 folder holding cloud/ (what Drive has) and cache/
  COLABMAGIC_STANDIN_DRIVE_FLUSH_SECONDS   how long a flush takes (default 2)
  COLABMAGIC_STANDIN_DRIVE_DROP            glob of files a flush silently fails to push (the
                                           "returned in seconds without having synced" case)
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import time

__all__ = ["flush_and_unmount", "mount"]


def _root() -> str:
    return os.environ["COLABMAGIC_STANDIN_DRIVE"]


def _cloud() -> str:
    return os.path.join(_root(), "cloud")


def _cache() -> str:
    return os.path.join(_root(), "cache")


def _state_path() -> str:
    return os.path.join(_root(), "state.json")


def _mounted_at() -> str:
    try:
        with open(_state_path()) as fh:
            return json.load(fh).get("mountpoint", "")
    except (OSError, ValueError):
        return ""


def _is_mount(path: str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh if len(line.split()) > 4)


def _umount(path: str) -> None:
    if path and _is_mount(path):
        subprocess.run(["umount", path], check=False, capture_output=True)


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    """Mount "Drive" at ``mountpoint`` (files under ``mountpoint/MyDrive``)."""
    host = os.environ.get("COLABMAGIC_STANDIN_COLAB_HOST", "hosted")
    if host == "kaggle":  # no /var/colab/hostname
        raise NotImplementedError(
            "Mounting drive is unsupported in this environment. Use PyDrive2 instead. See examples at "
            "https://colab.research.google.com/notebooks/io.ipynb#scrollTo=7taylj9wpsA2."
        )
    if " " in mountpoint:
        raise ValueError("Mountpoint must not contain a space.")
    if host == "enterprise":
        raise NotImplementedError("google.colab.drive.mount is not supported in Colab Enterprise.")
    if os.environ.get("COLABMAGIC_STANDIN_DRIVE_AUTH") == "denied":
        from google.colab import _message

        raise _message.MessageError("Error: credential propagation was unsuccessful")
    mountpoint = os.path.expanduser(mountpoint)
    # The real function checks for "My Drive" although DriveFS names the folder MyDrive.
    already_mounted = os.path.isdir(os.path.join(mountpoint, "My Drive"))
    if not force_remount and already_mounted:
        print(
            f"Drive already mounted at {mountpoint}; to attempt to forcibly "
            f'remount, call drive.mount("{mountpoint}", force_remount=True).'
        )
        return
    # Like the real one: stop any running DriveFS (no flush) and unmount, then check.
    _umount(_mounted_at())
    _umount(mountpoint)
    if os.path.islink(mountpoint):
        raise ValueError("Mountpoint must not be a symlink")
    if os.path.isdir(mountpoint) and os.listdir(mountpoint):
        raise ValueError("Mountpoint must not already contain files")
    if not os.path.isdir(mountpoint) and os.path.exists(mountpoint):
        raise ValueError("Mountpoint must either be a directory or not exist")
    normed = os.path.normpath(mountpoint)
    if "/" in normed and not os.path.exists(os.path.dirname(normed)):
        raise ValueError("Mountpoint must be in a directory that exists")
    os.makedirs(mountpoint, exist_ok=True)
    my_drive = os.path.join(_cache(), "MyDrive")
    if not os.path.isdir(my_drive):  # a fresh DriveFS cache starts from what Drive holds
        shutil.copytree(_cloud(), my_drive)
    result = subprocess.run(["mount", "--bind", _cache(), mountpoint], capture_output=True, text=True)
    if result.returncode:
        raise ValueError("mount failed")
    with open(_state_path(), "w") as fh:
        json.dump({"mountpoint": os.path.realpath(mountpoint)}, fh)
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms=24 * 60 * 60 * 1000):
    """Unmount Google Drive and flush any outstanding writes to it."""
    if os.environ.get("COLABMAGIC_STANDIN_COLAB_HOST") == "mp":
        raise NotImplementedError("google.colab.drive is unsupported in this environment.")
    mountpoint = _mounted_at()
    if not mountpoint or not _is_mount(mountpoint):
        print("Drive not mounted, so nothing to flush and unmount.")
        return
    delay = float(os.environ.get("COLABMAGIC_STANDIN_DRIVE_FLUSH_SECONDS", "2"))
    if delay > timeout_ms / 1000:
        time.sleep(timeout_ms / 1000)
        raise ValueError("flush_and_unmount failed")
    time.sleep(delay)
    _push(os.environ.get("COLABMAGIC_STANDIN_DRIVE_DROP", ""))
    _umount(mountpoint)


def _push(drop: str) -> None:
    """Make the cloud folder hold what the cache holds (except files matching ``drop``)."""
    src = os.path.join(_cache(), "MyDrive")
    dst = _cloud()
    for folder, _dirs, files in os.walk(src):
        rel_dir = os.path.relpath(folder, src)
        os.makedirs(os.path.join(dst, rel_dir), exist_ok=True)
        for name in files:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if drop and fnmatch.fnmatch(rel, drop):
                continue
            shutil.copy2(os.path.join(src, rel), os.path.join(dst, rel))
    for folder, _dirs, files in os.walk(dst):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), dst)
            if not os.path.exists(os.path.join(src, rel)):
                os.remove(os.path.join(dst, rel))
