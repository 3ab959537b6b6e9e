"""One sync, backend-independent: find what changed, flush, verify on the remote, report.

The order matters: aria2 downloads into the mount are paused and files
held open for writing are named before anything else; changed files are
hashed through the mount, each opened before its upload is started (rclone
can read a file wrongly that is opened just as its upload completes: seen
after rclone reloaded its cache), and with rclone read while the uploads run;
the flush leaves an rclone mount up (Colab's flush unmounts, and the mount
comes back unless asked not to, even when the flush fails or times out);
a bare mountpoint is guarded while unmounted; the snapshot moves forward
only when every file was confirmed, so a failed file is checked again next
time.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from ... import display
from ...errors import ColabMagicError
from ...system import paths
from . import config as config_defaults
from . import tracking, writers
from .colab import ColabBackend
from .config import DriveConfig
from .lock import LockTimeout, flush_lock
from .rclone import FlushFailed, FlushTimeout, RcloneBackend
from .report import (
    FAILED,
    SIZE_OK,
    UNCHECKED,
    VERIFIED,
    DriveSyncError,
    DriveSyncTimeout,
    FileResult,
    SyncReport,
    failure_message,
)

Progress = Callable[[float, str], None]
READ_FILES = 4  # changed files read through the mount at once
Backend = Any  # RcloneBackend | ColabBackend: same methods, duck-typed


def backend_for(config: DriveConfig, progress: Optional[Progress] = None, credentials: Any = None) -> Backend:
    if config.backend == "colab":
        return ColabBackend(config, progress, credentials)
    return RcloneBackend(config, progress)


def _record_path() -> Any:
    return paths.subdir("drive") / "mount.json"


def _write_record(config: DriveConfig, backend: Backend, **extra: Any) -> None:
    data = _read_record()
    data.update({"backend": config.backend, "mountpoint": config.mountpoint, "remote": backend.remote_label,
                 "config": config.__dict__})
    data.update(extra)
    paths.write_file(_record_path(), json.dumps(data, indent=1, sort_keys=True, default=str))


def _read_record() -> Dict[str, Any]:
    try:
        return json.loads(_record_path().read_text())
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class DriveMount:
    """What ``_colabmagic.drive`` shows: the mount colabmagic manages and its last sync."""

    backend: str
    mountpoint: str
    remote: str
    mounted: bool
    pid: Optional[int] = None
    last_sync: str = ""
    background: str = ""  # the background syncer (%drive_sync --every), one line

    def fields(self) -> List[Tuple[str, Any]]:
        return [("backend", self.backend), ("mountpoint", self.mountpoint), ("remote", self.remote),
                ("mounted", "yes" if self.mounted else "no (guarded)"), ("pid", self.pid),
                ("last sync", self.last_sync or "never"), ("background sync", self.background or "off")]

    def __repr__(self) -> str:
        return display.card_text("Drive mount", self.fields())

    def _repr_html_(self) -> str:
        return display.card_html("Drive mount", self.fields())


def current() -> Optional[DriveMount]:
    """The Drive mount colabmagic manages (mounted, or unmounted and guarded), else None."""
    data = _read_record()
    mp = data.get("mountpoint")
    if not mp:
        return None
    mounted = tracking.is_mounted(mp)
    if not mounted and not writers.guarded(mp):
        return None
    pid = None
    if data.get("backend") == "rclone":
        from ...system import supervisor
        from .rclone import MOUNT_SERVICE

        svc = supervisor.adopt(MOUNT_SERVICE)
        pid = svc.pid if svc else None
    from . import background

    syncer = background.current()
    return DriveMount(str(data.get("backend")), mp, str(data.get("remote", "")), mounted, pid,
                      str(data.get("last_sync", "")), syncer.summary() if syncer and syncer.running else "")


def guards(mountpoints: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """(mountpoint, what its guard is) for every unmounted mountpoint colabmagic left guarded: the one
    it knows from its record or guard records, the ``mountpoints`` given (the configured one) and the
    default ones, these found with no record at all."""
    candidates = [_read_record().get("mountpoint"), os.path.expanduser(config_defaults.DEFAULT_MOUNTPOINT),
                  config_defaults.DEFAULT_COLAB_MOUNTPOINT]
    candidates += [os.path.abspath(os.path.expanduser(mp)) for mp in mountpoints]
    for record in paths.subdir("drive").glob("guard-*.json"):
        try:
            candidates.append(json.loads(record.read_text()).get("mountpoint"))
        except (OSError, ValueError):
            continue
    found: List[Tuple[str, str]] = []
    for mp in dict.fromkeys(c for c in candidates if c):
        if os.path.isdir(mp) and not tracking.is_mounted(mp) and writers.guarded(mp):
            found.append((mp, writers.GUARD_NOTE.format(path=mp)))
    return found


def mount(config: DriveConfig, progress: Optional[Progress] = None, credentials: Any = None) -> DriveMount:
    """Mount (if not mounted yet) and start tracking changes from here."""
    cfg = config.resolved()
    backend = backend_for(cfg, progress, credentials)
    if not backend.mounted():
        backend.mount()
    writers.resume_remembered(cfg.mountpoint)
    tracking.Tracker(cfg.key, cfg.mountpoint, backend.skip(), cfg.tracked).baseline()
    _write_record(cfg, backend)
    return current() or DriveMount(cfg.backend, cfg.mountpoint, backend.remote_label, backend.mounted())


def unmount(config: DriveConfig, progress: Optional[Progress] = None, credentials: Any = None) -> SyncReport:
    """Flush, verify and leave the mountpoint unmounted (guarded)."""
    return sync(config, unmount=True, progress=progress, credentials=credentials)


class WritersBusy(ColabMagicError):
    """Files under the mountpoint are open for writing (the background syncer tries again shortly)."""


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
    backend = backend_for(cfg, progress, credentials)
    mp = cfg.mountpoint
    started = time.monotonic()
    deadline = started + cfg.timeout

    def elapsed() -> float:
        return time.monotonic() - started

    if not backend.mounted() and tracking.is_mounted(mp) and not tracking.mount_alive(mp) \
            and _read_record().get("mountpoint") == mp:
        backend.remount()  # our mount died (its daemon was killed): bring it back, then sync
    if not backend.mounted():
        if writers.guarded(mp) and not unmount:
            backend.remount()
            writers.resume_remembered(mp)
            _write_record(cfg, backend)
            report = SyncReport(cfg.backend, mp, backend.remote_label, elapsed(), (), "", True,
                                note="it was unmounted (and guarded), so nothing could change; mounted again")
            _write_record(cfg, backend, last_sync=report.summary())
            return report
        raise ColabMagicError(
            f"nothing is mounted at {str(mp)!r}: use the cell form %%drive_sync (it mounts first) "
            "or colabmagic.services.drive.mount(config)"
        )
    _write_record(cfg, backend)
    tracker = tracking.Tracker(cfg.key, mp, backend.skip(), cfg.tracked)
    baseline = tracker.baseline()
    try:
        now = tracker.scan(deadline)
    except TimeoutError as err:
        raise DriveSyncTimeout(f"drive_sync timed out: {err}")
    changes = tracking.diff(baseline, now)
    if not changes and not unmount and backend.pending_uploads() == 0:
        report = SyncReport(cfg.backend, mp, backend.remote_label, elapsed(), (), "", True)
        _write_record(cfg, backend, last_sync=report.summary())
        return report

    # Writers first: aria2 downloads into the mount pause; anything else still writing is named.
    aria, paused = writers.pause_aria2(mp)
    flushed = False
    try:
        aria_pid = getattr(aria, "pid", None) if aria is not None else None
        holders = [h for h in writers.open_for_writing(mp) if h[0] != aria_pid]
        if holders:
            listing = ", ".join(f"{path} (pid {pid} {prog})" for pid, prog, path in holders[:10])
            raise WritersBusy(f"files under {mp} are still open for writing; close them first: {listing}")
        algo, method = _hash_choice(backend, cfg, deadline)
        # rclone uploads while the files are read (each once it is open here); Colab's flush
        # unmounts, so there everything is read first.
        overlap = isinstance(backend, RcloneBackend)
        reading = _Reading(mp, [c.path for c in changes if c.kind != "deleted"], algo, deadline, direct=overlap)
        try:
            if not overlap:
                reading.wait(changes, progress)
            flush_error, mounted_after, post = _flush_and_remount(
                backend, cfg, tracker, unmount, deadline, reading, algo, reading.may_upload if overlap else None)
        except BaseException:
            reading.close()
            raise
        flushed = True
    finally:
        # Left unmounted (--unmount stops rclone below, once verified), the downloads stay paused
        # (they would fail to land) until the next mount.
        if aria is not None and tracking.is_mounted(mp) and not (unmount and flushed):
            writers.resume_aria2(aria, paused)
        elif paused:
            writers.remember_paused(mp, paused)

    results: List[FileResult] = []
    errors: List[str] = []
    timed_out = isinstance(flush_error, FlushTimeout)
    verify = flush_error is None and cfg.verify and not (
        getattr(backend, "needs_mount_to_verify", lambda a: False)(algo) and not mounted_after)
    remote: Dict[str, Tuple[int, Optional[str]]] = {}
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The remote is read back while the last reads through the mount finish.
            asked = pool.submit(backend.remote_files, [c.path for c in changes], algo, deadline) if verify else None
            expected = reading.wait(changes, progress)
            try:
                remote = asked.result() if asked is not None else {}
            except FlushTimeout as err:
                timed_out = True
                errors.append(err.message)
    finally:
        reading.close()
    if flush_error is not None:
        if not flush_error.failures:
            errors.append(flush_error.message)
            errors.extend(flush_error.details[-5:])
        for change in changes:
            why = flush_error.failures.get(change.path)
            if why is None and not flush_error.failures:
                why = flush_error.message
            if why is not None:
                results.append(FileResult(change.path, change.kind, change.size, FAILED, reason=why))
            else:
                results.append(FileResult(change.path, change.kind, change.size, UNCHECKED,
                                          reason="not checked: the flush of other files failed"))
    elif not verify:
        why = method if not cfg.verify else "not verified: the size check needs the mount (--unmount)"
        method = why
        results = [FileResult(c.path, c.kind, c.size, UNCHECKED, reason=why) for c in changes]
    else:
        if getattr(backend, "method_override", ""):
            algo, method = None, backend.method_override
        for change in changes:
            results.append(_judge(change, expected.get(change.path), remote, algo, timed_out))

    if unmount and cfg.backend == "rclone" and tracking.is_mounted(mp):
        backend.stop_mount()  # verified (or not) through the mount's own API: now it can go
        writers.guard(mp)
    notes = []
    if cfg.tracked:
        notes.append(f"only {', '.join(cfg.tracked)} is tracked and verified; the rest was flushed, not checked")
    if paused:
        if mounted_after:
            notes.append(f"paused {len(paused)} aria2 download(s) writing into the mount during the unmount, "
                         "then resumed")
        else:
            notes.append(f"paused {len(paused)} aria2 download(s) writing into the mount; they resume "
                         "when it is mounted again")
    note = "; ".join(notes)
    report = SyncReport(cfg.backend, mp, backend.remote_label, elapsed(), tuple(results), method,
                        mounted_after, note=note, timed_out=timed_out, errors=tuple(errors))
    _write_record(cfg, backend, last_sync=report.summary())
    if report.ok:
        if post is not None:
            tracker.save(_settled(now, post))
        else:
            tracker.save(tracking.Snapshot(now.files, "", time.time()))
        return report
    head, details = failure_message(report)
    cls = DriveSyncTimeout if timed_out else DriveSyncError
    raise cls(head, report=report, details=details)


def _hash_choice(backend: Backend, cfg: DriveConfig, deadline: float) -> Tuple[Optional[str], str]:
    """The checksum to verify with and how the report names it."""
    algo, method = backend.hash_algo(deadline) if cfg.verify else (None, "nothing (--no-verify)")
    if algo and not tracking.can_hash(algo):
        algo, method = None, f"size only ({algo} cannot be computed here)"
    return algo, method


def _open_for_reading(path: str, direct: bool) -> int:
    if direct and hasattr(os, "O_DIRECT"):
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECT)
        except OSError as err:
            if err.errno != errno.EINVAL:  # a file system without O_DIRECT: read through the page cache
                raise
    return os.open(path, os.O_RDONLY)


class _Stopped(Exception):
    """The sync ended (an interrupt, an error) while files were still being read."""


class _Reading(Mapping[str, Tuple[int, Optional[str]]]):
    """Size and checksum of each changed file, read through the mount in threads: path -> (size, digest).

    With rclone the reads run while the flush uploads. A file is opened here before rclone is told
    to upload it (the flush asks ``may_upload``), so it is read from rclone's cache, where the file
    as written lies, and never opened just as its upload completes: rclone can read a file wrongly
    that is opened then (seen after it had reloaded its cache). READ_FILES files are read at once.
    ``direct``: read with O_DIRECT, past the kernel's page cache straight from rclone (what it
    uploads), which also spares a copy (about a tenth less CPU
    per GiB read, Python and rclone together, measured on rclone's mount).
    """

    def __init__(self, mountpoint: str, paths: Sequence[str], algo: Optional[str], deadline: float,
                 direct: bool = False):
        self.mountpoint, self.algo, self.deadline, self.direct = mountpoint, algo, deadline, direct
        self._lock = threading.Lock()
        self._held: Set[str] = set()
        self._done: Set[str] = set()
        self._read_bytes = 0
        self._stop = False
        self._pool = ThreadPoolExecutor(max_workers=READ_FILES, thread_name_prefix="drive-read")
        self._futures: Dict[str, Future] = {p: self._pool.submit(self._read, p) for p in paths}

    def _read(self, rel: str) -> Tuple[int, Optional[str]]:
        try:
            if self._stop:
                raise _Stopped()
            fd = _open_for_reading(os.path.join(self.mountpoint, rel), self.direct)
            with self._lock:
                self._held.add(rel)
            try:
                size = os.fstat(fd).st_size
                digest = tracking.fd_hash(fd, size, self.algo, self.deadline, self._count) if self.algo else None
            finally:
                os.close(fd)
            return size, digest
        finally:
            with self._lock:
                self._held.discard(rel)
                self._done.add(rel)

    def _count(self, n: int) -> None:
        if self._stop:
            raise _Stopped()
        with self._lock:
            self._read_bytes += n

    def may_upload(self, rel: str) -> bool:
        """Whether rclone may upload ``rel`` now: not read here, or open here already, or read."""
        with self._lock:
            return rel not in self._futures or rel in self._held or rel in self._done

    def __getitem__(self, rel: str) -> Tuple[int, Optional[str]]:
        return self._futures[rel].result()

    def get(self, rel: str, default: Any = None) -> Any:  # type: ignore[override]
        """The file's (size, digest) once read; ``default`` when it is not one read here or could not be read."""
        future = self._futures.get(rel)
        if future is None:
            return default
        try:
            return future.result()
        except Exception:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._futures)

    def __len__(self) -> int:
        return len(self._futures)

    def wait(self, changes: List[tracking.Change], progress: Optional[Progress]) -> Dict[str, Tuple[int, Optional[str]]]:
        """Every file's (size, digest), showing progress while reads are left; the errors as before a flush."""
        total = sum(c.size for c in changes if c.path in self._futures) or 1
        pending = set(self._futures.values())
        while pending:
            _, pending = wait_futures(pending, timeout=0.25)
            if pending and progress is not None:
                progress(min(0.99, self._read_bytes / total), f"{self.algo or 'size'} of changed files")
        found: Dict[str, Tuple[int, Optional[str]]] = {}
        for rel, future in self._futures.items():
            try:
                found[rel] = future.result()
            except TimeoutError as err:
                names = ", ".join(c.path for c in changes[:20]) + (" ..." if len(changes) > 20 else "")
                raise DriveSyncTimeout(f"drive_sync timed out ({err}); not confirmed on the remote: {names}")
            except FileNotFoundError:
                raise ColabMagicError(
                    f"{rel} disappeared from {self.mountpoint} while drive_sync read it (deleted by another "
                    "process, or lost by a mount that was killed before it had saved the write); nothing was "
                    "unmounted; run the sync again"
                )
        return found

    def close(self) -> None:
        """Stop reading (after an error or an interrupt) and close every file opened here."""
        self._stop = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def _flush_and_remount(
    backend: Backend, cfg: DriveConfig, tracker: tracking.Tracker, unmount: bool, deadline: float,
    expected: Mapping[str, Tuple[int, Optional[str]]], algo: Optional[str],
    ready: Optional[Callable[[str], bool]] = None,
) -> Tuple[Optional[FlushFailed], bool, Optional[tracking.Snapshot]]:
    """Flush; where that unmounted (Colab), guard the bare mountpoint and remount unless told not to.
    An rclone mount stays up (``sync`` stops it after verifying, for ``--unmount``).

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
        if ready is not None:
            backend.flush(deadline, expected, algo, ready=ready)
        else:
            backend.flush(deadline, expected, algo)
    except FlushFailed as err:
        flush_error = err
    except BaseException:
        # Interrupted (KeyboardInterrupt): rclone's pending files stay in its cache; bring the
        # mount back before passing the interrupt on. A Colab flush may still be running in its
        # thread, so that mountpoint is only guarded.
        if not tracking.is_mounted(mp):
            writers.guard(mp)
        if cfg.backend == "rclone" and not unmount:
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


def _settled(before: tracking.Snapshot, after: tracking.Snapshot) -> tracking.Snapshot:
    """The snapshot to save after a sync: ``after`` (the mount session and inodes as they are now) only for
    files that did not change while the sync ran. A file written, created or deleted during the flush was
    not verified, so it keeps its old entry (or none) and counts as changed next time."""
    files = {}
    for path, stat in before.files.items():
        now = after.files.get(path)
        files[path] = now if now is not None and now[:2] == stat[:2] else stat
    return tracking.Snapshot(files, after.session, after.taken_at)


def _judge(change: tracking.Change, want: Optional[Tuple[int, Optional[str]]],
           remote: Dict[str, Tuple[int, Optional[str]]], algo: Optional[str], timed_out: bool) -> FileResult:
    path, kind, size = change.path, change.kind, change.size
    if timed_out and path not in remote:
        return FileResult(path, kind, size, FAILED, reason="not confirmed: the timeout ran out")
    if kind == "deleted":
        if path in remote:
            return FileResult(path, kind, size, FAILED, reason="deleted here but still on the remote")
        return FileResult(path, kind, size, VERIFIED, how="absent on the remote")
    if path not in remote:
        return FileResult(path, kind, size, FAILED, reason="missing on the remote")
    remote_size, remote_hash = remote[path]
    want_size, want_hash = want if want else (size, None)
    if remote_size != want_size:
        return FileResult(path, kind, want_size, FAILED,
                          reason=f"size on the remote is {remote_size}, here {want_size}")
    if algo and want_hash:
        if not remote_hash:
            return FileResult(path, kind, want_size, SIZE_OK, how=f"size only (the remote gave no {algo})")
        if remote_hash.lower() != want_hash.lower():
            return FileResult(path, kind, want_size, FAILED, reason=f"{algo} differs on the remote (stale content)")
        return FileResult(path, kind, want_size, VERIFIED, how=algo)
    return FileResult(path, kind, want_size, SIZE_OK, how="size only")
