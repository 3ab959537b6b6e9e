"""``SyncReport``: what one sync did, as a value a user can keep, print or display.

It lists every changed file with its size and outcome (verified by which
checksum, checked by size only, or failed and why), the bytes and seconds
the sync took, and whether the mount is back. Formatting is delegated to
``colabmagic.display``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from ... import display
from ...errors import ColabMagicError

VERIFIED = "verified"
SIZE_OK = "size ok"
FAILED = "FAILED"
UNCHECKED = "not checked"


@dataclass(frozen=True)
class FileResult:
    """One changed file and what the sync found on the remote."""

    path: str
    change: str  # created, modified, deleted
    size: int
    status: str  # verified, size ok, FAILED, not checked
    how: str = ""  # "sha256 from the remote", "absent on the remote", "size only", ...
    reason: str = ""  # why it failed

    @property
    def failed(self) -> bool:
        return self.status == FAILED


@dataclass(frozen=True)
class SyncReport:
    """The outcome of ``%drive_sync``: files, bytes, seconds, and verified or which files failed."""

    backend: str
    mountpoint: str
    remote: str
    seconds: float
    files: Tuple[FileResult, ...] = ()
    method: str = ""  # how files were verified: "sha256 from the remote", "size only (...)", ...
    mounted: bool = True  # the mount is back after the sync
    note: str = ""
    timed_out: bool = False
    errors: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.files)

    @property
    def failed(self) -> List[FileResult]:
        return [f for f in self.files if f.failed]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.timed_out and not self.errors

    @property
    def verified(self) -> bool:
        """Every changed file was confirmed on the remote by checksum (or, deleted, confirmed absent)."""
        return self.ok and all(f.status == VERIFIED for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files if f.change != "deleted")

    def summary(self) -> str:
        took = f"{self.seconds:.1f}s"
        after = "" if self.mounted else "; left unmounted"
        if not self.files and self.ok:
            return f"no changes since the last sync ({took}){after}"
        count = f"{len(self.files)} changed file{'s' if len(self.files) != 1 else ''}"
        size = display.human_bytes(self.bytes)
        if self.timed_out:
            return f"TIMED OUT after {took}: {count} ({size}) not confirmed on the remote{after}"
        if self.failed or self.errors:
            bad = len(self.failed)
            return f"FAILED: {bad} of {count} did not reach the remote ({took}){after}"
        if self.verified:
            return f"verified {count} ({size}) in {took} by {self.method}{after}"
        return f"synced {count} ({size}) in {took}; NOT verified by checksum: {self.method}{after}"

    def table(self) -> display.Table:
        rows = [
            [f.path, f.change, display.human_bytes(f.size) if f.change != "deleted" else "-",
             f.status, f.reason or f.how]
            for f in self.files
        ]
        return display.Table(["file", "change", "size", "result", "how / why"], rows,
                             title=f"drive_sync {self.mountpoint} -> {self.remote}: {self.summary()}",
                             empty="(no changes)")

    def fields(self) -> List[Tuple[str, Any]]:
        out: List[Tuple[str, Any]] = [
            ("backend", self.backend),
            ("mountpoint", self.mountpoint),
            ("remote", self.remote),
            ("files", len(self.files)),
            ("bytes", display.human_bytes(self.bytes)),
            ("seconds", f"{self.seconds:.1f}"),
            ("verified", ("yes, by " + self.method) if self.verified else "no"),
            ("mounted", "yes" if self.mounted else "no"),
        ]
        if self.note:
            out.append(("note", self.note))
        return out

    def __repr__(self) -> str:
        text = self.table().text()
        extra = [f"  {e}" for e in self.errors] + ([f"  note: {self.note}"] if self.note else [])
        return "\n".join([text] + extra)

    def _repr_html_(self) -> str:
        blocks = [("errors", "\n".join(self.errors))] if self.errors else []
        return display.card_html(f"drive_sync: {self.summary()}", self.fields(), blocks) + self.table()._repr_html_()


class DriveSyncError(ColabMagicError):
    """Files did not reach the remote (named, with why); ``.report`` holds the full SyncReport."""

    def __init__(self, message: str, report: Optional[SyncReport] = None, details: Optional[List[str]] = None):
        super().__init__(message, details=details)
        self.report = report


class DriveSyncTimeout(DriveSyncError):
    """The flush did not finish within the timeout; the files still pending are named."""


def notes(tracked: Tuple[str, ...], paused: int, mounted: bool) -> str:
    """The report's note: what was tracked, and what became of aria2 downloads paused for the sync."""
    found = []
    if tracked:
        found.append(f"only {', '.join(tracked)} is tracked and verified; the rest was flushed, not checked")
    if paused:
        if mounted:
            found.append(f"paused {paused} aria2 download(s) writing into the mount during the unmount, "
                         "then resumed")
        else:
            found.append(f"paused {paused} aria2 download(s) writing into the mount; they resume "
                         "when it is mounted again")
    return "; ".join(found)


def failure_message(report: SyncReport, limit: int = 20) -> Tuple[str, List[str]]:
    """One line naming the files that did not make it, plus one detail line per file."""
    failed = report.failed
    names = ", ".join(f.path for f in failed[:limit]) + (" ..." if len(failed) > limit else "")
    if report.timed_out:
        head = (f"drive_sync timed out after {report.seconds:.0f}s; not confirmed on "
                f"{report.remote}: {names or '(unknown files)'}")
    else:
        head = f"{len(failed)} file(s) did not reach {report.remote}: {names}"
    details = [f"{f.path}: {f.reason}" for f in failed[:limit]] + list(report.errors)
    if report.mounted:
        details.append(f"{report.mountpoint} is mounted again; the files are still in the local cache")
    return head, details
