"""What colabmagic knows of its Drive mount between calls and kernels: its record, and ``DriveMount``.

The record (``$COLABMAGIC_HOME/drive/mount.json``) holds the backend,
mountpoint, remote, settings and the last sync's summary. ``current()`` is
what ``_colabmagic.drive`` shows; ``guards()`` lists the unmounted
mountpoints colabmagic left guarded (``%colabmagic status``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ... import display
from ...system import paths
from . import config as config_defaults
from . import tracking, writers
from .backend import DriveBackend, backend_for
from .config import DriveConfig


def _record_path() -> Path:
    return paths.subdir("drive") / "mount.json"


def write_record(config: DriveConfig, backend: DriveBackend, **extra: Any) -> None:
    data = read_record()
    data.update({"backend": config.backend, "mountpoint": config.mountpoint, "remote": backend.remote_label,
                 "config": config.__dict__})
    data.update(extra)
    paths.write_file(_record_path(), json.dumps(data, indent=1, sort_keys=True, default=str))


def read_record() -> Dict[str, Any]:
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


def _recorded_backend(data: Dict[str, Any]) -> Optional[DriveBackend]:
    """The backend the record names, with its settings (None for a record it cannot be rebuilt from)."""
    try:
        return backend_for(DriveConfig(**data["config"]))
    except (KeyError, TypeError):
        return None


def current() -> Optional[DriveMount]:
    """The Drive mount colabmagic manages (mounted, or unmounted and guarded), else None."""
    data = read_record()
    mp = data.get("mountpoint")
    if not mp:
        return None
    mounted = tracking.is_mounted(mp)
    if not mounted and not writers.guarded(mp):
        return None
    backend = _recorded_backend(data)
    pid = backend.mount_pid() if backend is not None else None
    from . import background

    syncer = background.current()
    return DriveMount(str(data.get("backend")), mp, str(data.get("remote", "")), mounted, pid,
                      str(data.get("last_sync", "")), syncer.summary() if syncer and syncer.running else "")


def guards(mountpoints: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """(mountpoint, what its guard is) for every unmounted mountpoint colabmagic left guarded: the one
    it knows from its record or guard records, the ``mountpoints`` given (the configured one) and the
    default ones, these found with no record at all."""
    candidates = [read_record().get("mountpoint"), os.path.expanduser(config_defaults.DEFAULT_MOUNTPOINT),
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
