"""``%aria2``'s service: a supervised aria2c daemon for HTTP, FTP, magnet, torrent and metalink downloads.

``ensure(Aria2Config())`` gives the running daemon (starting it on first
use); ``Aria2.add(...)`` queues downloads and returns ``Download`` objects
at once; ``Aria2.wait(...)`` blocks with progress. ``current()`` is what
``_colabmagic.aria2`` shows.
"""

from __future__ import annotations

from .daemon import (
    Aria2,
    Aria2Config,
    DownloadError,
    SpaceWarning,
    cached_trackers,
    current,
    default_download_dir,
    ensure,
    start,
    stop,
    update_trackers,
)
from .download import Download

__all__ = [
    "Aria2",
    "Aria2Config",
    "Download",
    "DownloadError",
    "SpaceWarning",
    "cached_trackers",
    "current",
    "default_download_dir",
    "ensure",
    "start",
    "stop",
    "update_trackers",
]
