"""A sync's verification step: each changed file read back from the remote and judged against what was read here.

The remote is asked (``remote_files``) while the last reads through the
mount finish. A failed flush marks the files it names FAILED (and the others
not checked); with nothing to read back with (``--no-verify``, or a size check
that needs the mount the sync left unmounted) every file is not checked;
otherwise each file is verified by checksum, by size only, or FAILED with why.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional

from . import tracking
from .backend import DriveBackend, FileFacts, FlushFailed, FlushTimeout, Progress
from .config import DriveConfig
from .flushing import Flushed
from .report import FAILED, SIZE_OK, UNCHECKED, VERIFIED, FileResult


@dataclass(frozen=True)
class Verified:
    """Each changed file's outcome, the errors beside them, and how they were checked."""

    results: List[FileResult]
    errors: List[str]
    timed_out: bool
    method: str


def verify(cfg: DriveConfig, backend: DriveBackend, changes: List[tracking.Change], flushed: Flushed,
           deadline: float, progress: Optional[Progress]) -> Verified:
    """Read the remote back and judge every change; closes ``flushed.reading`` whatever happens."""
    algo, method = flushed.algo, flushed.method
    errors: List[str] = []
    timed_out = isinstance(flushed.error, FlushTimeout)
    check = flushed.error is None and cfg.verify and not (
        backend.needs_mount_to_verify(algo) and not flushed.mounted_after)
    remote: Dict[str, FileFacts] = {}
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The remote is read back while the last reads through the mount finish.
            asked = pool.submit(backend.remote_files, [c.path for c in changes], algo, deadline) if check else None
            expected = flushed.reading.wait(changes, progress)
            try:
                remote = asked.result() if asked is not None else {}
            except FlushTimeout as err:
                timed_out = True
                errors.append(err.message)
    finally:
        flushed.reading.close()
    if flushed.error is not None:
        return Verified(_flush_failed(flushed.error, changes, errors), errors, timed_out, method)
    if not check:
        why = method if not cfg.verify else "not verified: the size check needs the mount (--unmount)"
        return Verified([FileResult(c.path, c.kind, c.size, UNCHECKED, reason=why) for c in changes],
                        errors, timed_out, why)
    if backend.method_override:
        algo, method = None, backend.method_override
    results = [judge(c, expected.get(c.path), remote, algo, timed_out) for c in changes]
    return Verified(results, errors, timed_out, method)


def _flush_failed(error: FlushFailed, changes: List[tracking.Change], errors: List[str]) -> List[FileResult]:
    """The files a failed flush names are FAILED with its reason (all of them when it names none, its
    message then among ``errors``); the others were not checked."""
    if not error.failures:
        errors.append(error.message)
        errors.extend(error.details[-5:])
    results = []
    for change in changes:
        why = error.failures.get(change.path)
        if why is None and not error.failures:
            why = error.message
        if why is not None:
            results.append(FileResult(change.path, change.kind, change.size, FAILED, reason=why))
        else:
            results.append(FileResult(change.path, change.kind, change.size, UNCHECKED,
                                      reason="not checked: the flush of other files failed"))
    return results


def judge(change: tracking.Change, want: Optional[FileFacts], remote: Dict[str, FileFacts],
          algo: Optional[str], timed_out: bool) -> FileResult:
    """One file's outcome: what the remote holds against what was read here."""
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
