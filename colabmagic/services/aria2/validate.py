"""Check every user string before it reaches aria2, so a refused line adds nothing.

Values only ever travel to aria2 as JSON-RPC parameters, never as command
line options; these checks still refuse what aria2 would misread (a header
with a line break), what would leave the chosen folder (``--out ../x``),
and schemes the product does not download from (``file://``, ``javascript:``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

from ...errors import BadInputError

URL_SCHEMES = ("http", "https", "ftp", "sftp")
TORRENT_SUFFIXES = (".torrent",)
METALINK_SUFFIXES = (".metalink", ".meta4")
# RFC 7230 token characters for a header name.
HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+:[ \t]*[^\x00-\x08\x0a-\x1f\x7f]*$")
BTIH = re.compile(r"^urn:btih:([0-9a-fA-F]{40}|[A-Za-z2-7]{32})$")
BTMH = re.compile(r"^urn:btmh:1220[0-9a-fA-F]{64}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Source:
    """One thing to download: ``kind`` is uri, magnet, torrent or metalink; ``value`` a URI or a file path."""

    kind: str
    value: str

    @property
    def is_bittorrent(self) -> bool:
        return self.kind in ("magnet", "torrent") or (
            self.kind == "uri" and urlsplit(self.value).path.lower().endswith(TORRENT_SUFFIXES)
        )


def _no_control(value: str, what: str) -> None:
    if CONTROL.search(value):
        raise BadInputError(f"{what} contains a control character (line break, tab or NUL): {value!r}")


def magnet(value: str) -> str:
    """A magnet link with a well-formed BitTorrent info-hash (``xt=urn:btih:`` or ``urn:btmh:``)."""
    _no_control(value, "magnet link")
    if " " in value:
        raise BadInputError(f"magnet link contains a space: {value!r}")
    parts = urlsplit(value)
    if parts.scheme.lower() != "magnet" or not value.lower().startswith("magnet:?"):
        raise BadInputError(f"not a magnet link (it must start with 'magnet:?'): {value!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    topics = query.get("xt", [])
    if not topics or not all(BTIH.match(t) or BTMH.match(t) for t in topics):
        raise BadInputError(
            f"malformed magnet link: it needs xt=urn:btih: with a 40-hex or 32-base32 info-hash: {value!r}"
        )
    for tracker in query.get("tr", []):
        if urlsplit(tracker).scheme.lower() not in ("http", "https", "udp", "wss"):
            raise BadInputError(f"magnet link has a tracker that is not http(s)/udp/wss: {tracker!r}")
    return value


def url(value: str) -> str:
    """An http(s), ftp or sftp URL with a host; ``file://`` and every other scheme are refused."""
    _no_control(value, "URL")
    if any(ch.isspace() for ch in value):
        raise BadInputError(f"URL contains whitespace (quote it with %20 if the server needs one): {value!r}")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise BadInputError(
            f"refused scheme {scheme or '(none)'!r}: %aria2 downloads http, https, ftp and sftp URLs, "
            f"magnet links and local .torrent/.metalink files: {value!r}"
        )
    if not parts.hostname:
        raise BadInputError(f"URL has no host: {value!r}")
    return value


def source(value: str) -> Source:
    """Classify and check one ``add`` argument."""
    if not value:
        raise BadInputError("an empty download source")
    if "\x00" in value:
        raise BadInputError(f"download source contains NUL: {value!r}")
    if value.lower().startswith("magnet:"):
        return Source("magnet", magnet(value))
    if "://" in value or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value):
        return Source("uri", url(value))
    _no_control(value, "file name")
    path = Path(value).expanduser()
    lower = path.name.lower()
    kind = "torrent" if lower.endswith(TORRENT_SUFFIXES) else "metalink" if lower.endswith(METALINK_SUFFIXES) else ""
    if not kind:
        raise BadInputError(
            f"not a URL, magnet link, .torrent or .metalink file: {value!r}"
        )
    if not path.is_file():
        raise BadInputError(f"no such file: {value!r}")
    return Source(kind, str(path.resolve()))


def sources(values: Sequence[str]) -> List[Source]:
    if not values:
        raise BadInputError("add needs at least one URL, magnet link, .torrent or .metalink file")
    return [source(v) for v in values]


def directory(value: str) -> str:
    """Any folder the user names, made absolute (``~`` expanded)."""
    if not value:
        raise BadInputError("an empty folder name")
    _no_control(value, "folder")
    return os.path.abspath(os.path.expanduser(value))


def out_name(value: Optional[str]) -> Optional[str]:
    """A file name inside the target folder: no folder parts, no ``..``, not absolute."""
    if value is None:
        return None
    _no_control(value, "--out")
    if not value or value in (".", ".."):
        raise BadInputError(f"--out must be a file name: {value!r}")
    if os.path.isabs(value) or "/" in value or "\\" in value:
        raise BadInputError(
            f"--out is a file name inside the target folder, not a path: {value!r} "
            "(use --dir to choose the folder)"
        )
    return value


def header(value: str) -> str:
    """One HTTP header as ``Name: value`` on a single line."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise BadInputError(f"a header must be one line (no line breaks or NUL): {value!r}")
    if not HEADER.match(value):
        raise BadInputError(f"a header must look like 'Name: value': {value!r}")
    return value


def headers(values: Optional[Sequence[str]]) -> List[str]:
    return [header(v) for v in values or []]


def user_agent(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    _no_control(value, "user agent")
    return value


def seed_time(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    if not (value >= 0) or value != value or value == float("inf"):
        raise BadInputError(f"--seed-time is minutes >= 0: {value!r}")
    return float(value)


def gid(value: str) -> str:
    """An aria2 GID: 16 hex digits."""
    if not re.fullmatch(r"[0-9a-fA-F]{16}", value or ""):
        raise BadInputError(f"not a download id (16 hex digits, see %aria2 status): {value!r}")
    return value.lower()


def tracker(value: str) -> str:
    value = value.strip()
    _no_control(value, "tracker")
    if urlsplit(value).scheme.lower() not in ("http", "https", "udp", "wss") or "," in value or " " in value:
        raise BadInputError(f"not a tracker URL: {value!r}")
    return value


def speed(value: str) -> str:
    """A speed limit as aria2 takes it: bytes per second, or with K/M (``2M``)."""
    if not re.fullmatch(r"\d+(\.\d+)?[KkMm]?", value.strip()):
        raise BadInputError(f"not a speed limit (e.g. 0, 500K, 2M): {value!r}")
    return value.strip()


def option_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
        raise BadInputError(f"not an aria2 option name: {value!r}")
    return value


def option_value(value: str) -> str:
    _no_control(value, "aria2 option value")
    return value
