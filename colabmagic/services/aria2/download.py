"""``Download``: what one aria2 download is, as a user sees it (built from ``aria2.tellStatus``).

``path`` is always the final location: for a download staged on local disk
because its folder is on a FUSE mount, it is the path in that folder, and
``status`` is ``placing`` between aria2 finishing and the file being moved
there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import unquote, urlsplit

from ... import display
from . import placement

DUPLICATE_INFO_HASH = "12"  # aria2's error_code::DUPLICATE_INFO_HASH: "InfoHash %s is already registered."

STATUS_KEYS = [
    "gid", "status", "totalLength", "completedLength", "downloadSpeed", "uploadSpeed", "dir",
    "files", "bittorrent", "errorCode", "errorMessage", "followedBy", "following", "infoHash",
    "numSeeders", "connections", "seeder",
]


@dataclass(frozen=True)
class Download:
    """One download: ``gid``, ``name``, ``status``, ``progress`` (0..1), ``speed`` (B/s), final ``path``."""

    gid: str
    name: str
    status: str
    progress: float
    speed: int
    path: Optional[str]
    total: int = 0
    completed: int = 0
    error: str = ""
    followed_by: Sequence[str] = ()
    staged_in: Optional[str] = None
    seeding: bool = False  # a torrent with every piece in and checked, still "active" while it seeds
    info_hash: str = ""  # a torrent's (hex), else ""
    error_code: str = ""  # aria2's exit status for a failed download (DUPLICATE_INFO_HASH, ...)

    @property
    def done(self) -> bool:
        return self.status == "complete"

    @property
    def fetched(self) -> bool:
        """Every byte is in its place: complete, or a torrent that now only seeds (aria2 writes each piece
        to the file before it counts it, ``BtPieceMessage::onNewPiece``). A staged torrent (a Drive
        folder) is moved into place only when its seeding ends, so it counts once complete."""
        return self.done or (self.seeding and self.staged_in is None)

    @property
    def failed(self) -> bool:
        return self.status in ("error", "removed")

    @property
    def shown_status(self) -> str:
        """The status as the card and the table show it: "seeding" for a whole torrent aria2 calls active."""
        return "seeding" if self.seeding else self.status

    def _fields(self) -> List[Any]:
        fields: List[Any] = [
            ("gid", self.gid),
            ("status", self.shown_status),
            ("progress", display.bar_text(self.progress)),
            ("size", display.human_bytes(self.total) if self.total else "unknown"),
            ("speed", f"{display.human_bytes(self.speed)}/s"),
            ("path", self.path or "(not known yet)"),
        ]
        if self.staged_in:
            fields.append(("staged in", self.staged_in))
        if self.error:
            fields.append(("error", self.error))
        return fields

    def __repr__(self) -> str:
        return display.card_text(f"Download {self.name}", self._fields())

    def _repr_html_(self) -> str:
        return display.card_html(f"Download {self.name}", self._fields())


def _name(status: Dict[str, Any]) -> str:
    bt = status.get("bittorrent") or {}
    name = (bt.get("info") or {}).get("name")
    if name:
        return str(name)
    files = status.get("files") or []
    if files:
        path = files[0].get("path") or ""
        if path and not path.startswith("[METADATA]"):
            return os.path.basename(path)
        if path.startswith("[METADATA]"):
            return path
        uris = files[0].get("uris") or []
        if uris:
            return os.path.basename(uris[0].get("uri", "").split("?")[0]) or uris[0].get("uri", "")
    return str(status.get("gid", ""))


def _aria2_path(status: Dict[str, Any]) -> Optional[str]:
    """Where aria2 writes: the single file, or the torrent's top folder for a multi-file torrent."""
    files = status.get("files") or []
    bt = status.get("bittorrent") or {}
    folder = status.get("dir") or ""
    if bt.get("mode") == "multi" and (bt.get("info") or {}).get("name"):
        return os.path.join(folder, bt["info"]["name"])
    if files:
        path = files[0].get("path") or ""
        if path and not path.startswith("[METADATA]"):
            return path
        uris = files[0].get("uris") or []
        if not path and uris and folder:
            # Before the first response aria2 has no name yet; it will use the URL's last part.
            last = os.path.basename(unquote(urlsplit(uris[0].get("uri", "")).path))
            if last:
                return os.path.join(folder, last)
    return None


def from_status(status: Dict[str, Any]) -> Download:
    total = int(status.get("totalLength") or 0)
    done = int(status.get("completedLength") or 0)
    state = str(status.get("status", "unknown"))
    where = _aria2_path(status)
    stage = placement.stage_of(status.get("dir") or "")
    error = str(status.get("errorMessage") or "") if state == "error" else ""
    staged_in = None
    if stage is not None:
        staged_in = str(stage.dir)
        if where is not None:
            rel = os.path.relpath(where, stage.dir)
            where = os.path.join(stage.target, rel)
        record = placement.read_record(stage.record)
        if state == "complete" and not status.get("followedBy"):  # a magnet's metadata step is not placed
            if record is not None and record.state == "error":
                state, error = "error", record.error or "could not move into place"
            elif record is None or record.state != "placed":
                state = "placing"
    seeding = state == "active" and status.get("seeder") == "true" and 0 < total == done
    progress = 1.0 if state == "complete" or seeding else (done / total if total else 0.0)
    if state == "placing":
        progress = 0.999
    return Download(
        gid=str(status.get("gid")),
        name=_name(status),
        status=state,
        progress=progress,
        speed=int(status.get("downloadSpeed") or 0),
        path=where,
        total=total,
        completed=done,
        error=error,
        seeding=seeding,
        info_hash=str(status.get("infoHash") or ""),
        error_code=str(status.get("errorCode") or "") if state == "error" else "",
        followed_by=tuple(status.get("followedBy") or ()),
        staged_in=staged_in,
    )


def table(downloads: Sequence[Download], title: str = "aria2 downloads") -> display.Table:
    rows = [
        [
            d.gid,
            d.name[:48],
            d.shown_status,
            display.bar_text(d.progress),
            display.human_bytes(d.total) if d.total else "?",
            f"{display.human_bytes(d.speed)}/s" if d.status == "active" else "",
            d.path or "",
        ]
        for d in downloads
    ]
    return display.Table(
        ["gid", "name", "status", "progress", "size", "speed", "path"], rows, title=title,
        empty="(no downloads)",
    )
