"""What changed under a mountpoint since the last verified sync.

A snapshot maps each file (relative path) to its size, mtime in ns and
inode, and is kept under ``$COLABMAGIC_HOME/drive`` so it survives a kernel
restart. Comparing the live tree with the last snapshot gives the files
created, modified in place and deleted. Inodes are compared only within one
mount session (FUSE file systems hand out new inode numbers on every
mount). Content hashes are taken only of changed files.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ...system import paths

# Hash names as rclone spells them -> how to compute them here.
HASHERS: Dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
}
CHUNK = 4 * 1024 * 1024
READ_AHEAD = 4  # chunks read at once when hashing

Stat = Tuple[int, int, int]  # size, mtime_ns, inode


@dataclass(frozen=True)
class Change:
    """One file that differs from the last snapshot."""

    path: str  # relative to the mountpoint, with "/" separators
    kind: str  # "created", "modified" or "deleted"
    size: int = 0


@dataclass
class Snapshot:
    """The tree as it was: path -> (size, mtime_ns, inode), and the mount session it was taken in."""

    files: Dict[str, Stat] = field(default_factory=dict)
    session: str = ""
    taken_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {"files": {k: list(v) for k, v in self.files.items()}, "session": self.session,
             "taken_at": self.taken_at},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        files = {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in data.get("files", {}).items()}
        return cls(files=files, session=str(data.get("session", "")), taken_at=float(data.get("taken_at", 0)))


def mount_session(mountpoint: str) -> str:
    """An id of the file system mounted at ``mountpoint`` now ("" when nothing is mounted there)."""
    target = os.path.realpath(mountpoint)
    try:
        with open("/proc/self/mountinfo") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ""
    found = ""
    for line in lines:
        parts = line.split()
        if len(parts) > 4 and _unescape(parts[4]) == target:
            found = f"{parts[0]}:{parts[2]}"  # the last (topmost) mount wins
    return found


def is_mounted(mountpoint: str) -> bool:
    return bool(mount_session(mountpoint))


def mount_alive(mountpoint: str) -> bool:
    """Mounted, and its file system answers (a killed FUSE daemon leaves a dead mount behind)."""
    if not is_mounted(mountpoint):
        return False
    try:
        os.stat(mountpoint)
    except OSError:
        return False
    return True


def _unescape(field_text: str) -> str:
    return field_text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def scan(root: str, skip: Sequence[str] = (), deadline: Optional[float] = None,
         only: Sequence[str] = ()) -> Snapshot:
    """Stat every regular file below ``root`` (or below its subfolders ``only``); symlinks are not followed."""
    files: Dict[str, Stat] = {}
    base = os.path.realpath(root)
    stack = [os.path.join(base, sub) for sub in only] if only else [base]
    while stack:
        folder = stack.pop()
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"listing {root} took longer than the timeout")
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            rel = os.path.relpath(entry.path, base).replace(os.sep, "/")
            if folder == base and rel in skip:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except FileNotFoundError:
                continue
    return Snapshot(files=files, session=mount_session(root), taken_at=time.time())


def diff(old: Snapshot, new: Snapshot) -> List[Change]:
    """Files created, modified (size, mtime or, in the same mount session, inode) and deleted."""
    same_session = bool(old.session) and old.session == new.session
    changes: List[Change] = []
    for path, (size, mtime, inode) in sorted(new.files.items()):
        before = old.files.get(path)
        if before is None:
            changes.append(Change(path, "created", size))
        elif before[0] != size or before[1] != mtime or (same_session and before[2] != inode):
            changes.append(Change(path, "modified", size))
    for path in sorted(set(old.files) - set(new.files)):
        changes.append(Change(path, "deleted", 0))
    return changes


def _chunks(fd: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of an open file in order, read READ_AHEAD chunks ahead in threads: a
    FUSE mount answers each read request in turn, so reads in flight together come through faster
    than one by one."""
    if size <= CHUNK:
        yield _pread(fd, size, 0)
        return
    with ThreadPoolExecutor(max_workers=READ_AHEAD) as pool:
        pending: Deque[Future] = deque()
        offset = 0
        while pending or offset < size:
            while offset < size and len(pending) < READ_AHEAD:
                pending.append(pool.submit(_pread, fd, min(CHUNK, size - offset), offset))
                offset += CHUNK
            yield pending.popleft().result()


def _pread(fd: int, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset``, fewer only at the end of the file (a read may return less)."""
    data = os.pread(fd, n, offset)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = os.pread(fd, n - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def file_hash(path: str, algo: str, deadline: Optional[float] = None,
              progress: Optional[Callable[[int], None]] = None) -> str:
    """The hex digest of a file (``algo`` as rclone names it: sha256, md5, sha1 or crc32)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return fd_hash(fd, os.fstat(fd).st_size, algo, deadline, progress)
    finally:
        os.close(fd)


def fd_hash(fd: int, size: int, algo: str, deadline: Optional[float] = None,
            progress: Optional[Callable[[int], None]] = None) -> str:
    """The hex digest of the first ``size`` bytes of an open file (a file that grew meanwhile is
    read to its size when opened; one cut shorter gives the digest of what is left)."""
    if algo == "crc32":
        crc = 0
        for chunk in _chunks(fd, size):
            crc = zlib.crc32(chunk, crc)
            _tick(deadline, progress, len(chunk))
        return f"{crc:08x}"
    digest = HASHERS[algo]()
    for chunk in _chunks(fd, size):
        digest.update(chunk)
        _tick(deadline, progress, len(chunk))
    return digest.hexdigest()


def _tick(deadline: Optional[float], progress: Optional[Callable[[int], None]], n: int) -> None:
    if progress is not None:
        progress(n)
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError("reading the changed files took longer than the timeout")


def can_hash(algo: str) -> bool:
    return algo in HASHERS or algo == "crc32"


class Tracker:
    """The persisted snapshot of one (backend, remote, mountpoint) and the changes against it."""

    def __init__(self, key: str, mountpoint: str, skip: Iterable[str] = (), only: Iterable[str] = ()):
        self.key = key
        self.mountpoint = mountpoint
        self.skip = tuple(skip)
        self.only = tuple(only)

    @property
    def path(self) -> Path:
        name = hashlib.sha256(self.key.encode()).hexdigest()[:16]
        return paths.subdir("drive") / f"snapshot-{name}.json"

    def load(self) -> Optional[Snapshot]:
        try:
            return Snapshot.from_json(self.path.read_text())
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def save(self, snapshot: Snapshot) -> None:
        paths.write_file(self.path, snapshot.to_json())

    def scan(self, deadline: Optional[float] = None) -> Snapshot:
        return scan(self.mountpoint, self.skip, deadline, self.only)

    def baseline(self) -> Snapshot:
        """The saved snapshot, taking one now (stat only) if there is none yet."""
        snap = self.load()
        if snap is None:
            snap = self.scan()
            self.save(snap)
        return snap

    def changes(self, deadline: Optional[float] = None) -> Tuple[List[Change], Snapshot]:
        now = self.scan(deadline)
        return diff(self.baseline(), now), now

    def forget(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
