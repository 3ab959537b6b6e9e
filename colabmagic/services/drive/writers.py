"""Keep writers away from a mountpoint while it is unmounted.

Before an unmount, aria2 downloads writing under the mountpoint are paused
(and resumed afterwards), and processes holding a file open for writing
there are named. While nothing is mounted, the bare mountpoint directory is
made read-only and immutable (``chattr +i``, which stops root too), so a
write cannot land on the local disk under the mount and be hidden (or lost)
when the mount comes back. The guard is recorded twice: under
``$COLABMAGIC_HOME/drive`` and on the folder itself (an extended attribute
holding its old mode), so it is recognised and lifted even when
colabmagic's own record is gone (a new COLABMAGIC_HOME). Where the file
system keeps no extended attributes, an empty immutable folder of mode 0555
is taken as ours.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ...system import paths, procfs


def _under(path: Optional[str], root: str) -> bool:
    if not path or not path.startswith("/"):  # "pipe:[123]", "socket:[..]" are not files
        return False
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


# --- aria2 -------------------------------------------------------------------

def pause_aria2(mountpoint: str) -> Tuple[Any, List[str]]:
    """Pause running aria2 downloads that write under ``mountpoint``; (daemon, gids paused)."""
    try:
        from .. import aria2
    except Exception:
        return None, []
    try:
        daemon = aria2.current()
        if daemon is None:
            return None, []
        paused = []
        for download in daemon.pending():
            if download.status not in ("active", "waiting"):
                continue
            if _under(download.path, mountpoint) or _under(getattr(download, "staged_in", None), mountpoint):
                daemon.pause(download.gid)
                paused.append(download.gid)
        return daemon, paused
    except Exception:
        return None, []


def resume_aria2(daemon: Any, gids: List[str]) -> List[str]:
    """Resume what ``pause_aria2`` paused; returns the gids resumed."""
    resumed = []
    for gid in gids:
        try:
            daemon.resume(gid)
            resumed.append(gid)
        except Exception:
            continue
    return resumed


def _paused_record(mountpoint: str) -> Path:
    return paths.subdir("drive") / f"aria2-paused-{_key(mountpoint)}.json"


def remember_paused(mountpoint: str, gids: List[str]) -> None:
    """Keep the downloads paused while the mountpoint stays unmounted; resumed at the next mount."""
    record = _paused_record(mountpoint)
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = []
    paths.write_file(record, json.dumps(sorted(set(known) | set(gids))))


def resume_remembered(mountpoint: str) -> List[str]:
    """Resume the downloads a sync that left the mountpoint unmounted kept paused."""
    record = _paused_record(mountpoint)
    try:
        gids = json.loads(record.read_text())
    except (OSError, ValueError):
        return []
    record.unlink()
    try:
        from .. import aria2

        daemon = aria2.current()
    except Exception:
        return []
    return resume_aria2(daemon, list(gids)) if daemon is not None else []


# --- open files --------------------------------------------------------------

def _open_under(mountpoint: str) -> Iterator[Tuple[int, str, str]]:
    """(pid, fd number, path) of every file under ``mountpoint`` some process holds open."""
    for pid in procfs.pids():
        for fd, target in procfs.open_files(pid):
            if _under(target, mountpoint):
                yield pid, fd, target


def open_for_writing(mountpoint: str) -> List[Tuple[int, str, str]]:
    """(pid, program, path) of every file under ``mountpoint`` some process holds open for writing."""
    found = []
    for pid, fd, target in _open_under(mountpoint):
        try:
            flags = int(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
            try:
                program = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                program = "?"
            found.append((pid, program, target))
    return found


# --- the guard on the bare mountpoint ------------------------------------------

def _key(mountpoint: str) -> str:
    return hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:16]


def _guard_record(mountpoint: str) -> Path:
    return paths.subdir("drive") / f"guard-{_key(mountpoint)}.json"


GUARD_XATTR = "user.colabmagic.guard"
FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h: _IOR('f', 1, long)
FS_IMMUTABLE_FL = 0x00000010


def immutable(path: str) -> bool:
    """Whether ``path`` carries the immutable flag (``chattr +i``; ``lsattr -d`` shows an i)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8))[0]
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(flags & FS_IMMUTABLE_FL)


def _mark(target: str) -> Optional[Dict[str, Any]]:
    """The guard's mark on the folder itself ({"mode": old mode}), or None."""
    try:
        return dict(json.loads(os.getxattr(target, GUARD_XATTR)))
    except (OSError, ValueError, TypeError):
        return None


def _ours(target: str) -> Optional[Dict[str, Any]]:
    """How to lift the guard colabmagic left on ``target`` (from its record, or the folder's mark, or
    the guard's look: empty, immutable, mode 0555), or None when there is no guard of ours."""
    try:
        data: Dict[str, Any] = json.loads(_guard_record(target).read_text())
        return data
    except (OSError, ValueError):
        pass
    if not immutable(target):
        return None
    mark = _mark(target)
    if mark is not None:
        return {"mountpoint": target, "mode": int(mark.get("mode", 0o755)), "how": "immutable"}
    try:
        looks = stat.S_IMODE(os.stat(target).st_mode) == 0o555 and not os.listdir(target)
    except OSError:
        return None
    return {"mountpoint": target, "mode": 0o755, "how": "immutable"} if looks else None


def guard(mountpoint: str) -> str:
    """Make the bare (unmounted) mountpoint unwritable; returns how ("immutable", "read-only", "")."""
    target = os.path.realpath(mountpoint)
    if not os.path.isdir(target):
        return ""
    record = _guard_record(mountpoint)
    if not record.exists():
        mode = stat.S_IMODE(os.stat(target).st_mode)
        paths.write_file(record, json.dumps({"mountpoint": target, "mode": mode}))
    data = json.loads(record.read_text())
    if not immutable(target):
        try:
            os.setxattr(target, GUARD_XATTR, json.dumps({"mode": data["mode"]}).encode())
        except OSError:
            pass  # no extended attributes here: the guard's look (empty, 0555, immutable) identifies it
    how = "read-only"
    os.chmod(target, 0o555)
    chattr = shutil.which("chattr")
    if chattr and _run([chattr, "+i", target]):
        how = "immutable"
    data["how"] = how
    paths.write_file(record, json.dumps(data))
    return how


def unguard(mountpoint: str) -> bool:
    """Lift colabmagic's guard (before mounting), with or without its record; True if there was one."""
    target = os.path.realpath(mountpoint)
    data = _ours(target)
    if data is None:
        return False
    target = data.get("mountpoint", target)
    if os.path.isdir(target):
        chattr = shutil.which("chattr")
        if chattr and (data.get("how") == "immutable" or immutable(target)):
            _run([chattr, "-i", target])
        try:
            os.removexattr(target, GUARD_XATTR)
        except OSError:
            pass
        os.chmod(target, int(data.get("mode", 0o755)))
    try:
        _guard_record(mountpoint).unlink()
    except FileNotFoundError:
        pass
    return True


def guarded(mountpoint: str) -> bool:
    return _ours(os.path.realpath(mountpoint)) is not None


GUARD_NOTE = ("kept immutable while unmounted (chattr +i, so nothing lands under the mount); "
              "the next %drive_sync lifts it, or by hand: chattr -i {path}")


def _run(argv: List[str]) -> bool:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
