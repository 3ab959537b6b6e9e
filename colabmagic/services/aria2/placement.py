"""Where a download is written while it runs, and where it ends up.

A target folder on a FUSE mount (Colab's Drive, an rclone mount) is never
written by aria2 directly: preallocation and random writes there sync as
zero-filled or partial files. Such a download goes to a staging folder on
local disk under ``$COLABMAGIC_HOME/aria2/staging/ID`` with a small record
``ID.json`` naming the final folder; aria2's ``on-download-complete`` hook
(hook.py, installed as a file of ours) moves each finished file into place
under a temporary name and renames it, so the final path only ever holds a
complete file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ...system import paths
from ..records import Record

HOOK_NAME = "on-download-complete"
ERROR_HOOK_NAME = "on-download-error"


def staging_root() -> Path:
    return paths.subdir("aria2") / "staging"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
    )


def mounts() -> List[Tuple[str, str]]:
    """(mount point, fstype) for every mount this process sees."""
    found: List[Tuple[str, str]] = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if len(fields) < 5:
            continue
        fstype = right.split()[0] if right.split() else ""
        found.append((_unescape(fields[4]), fstype))
    return found


def fstype_of(path: str) -> str:
    """The filesystem type of the mount holding ``path`` (which need not exist yet)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and probe != "/":
        probe = os.path.dirname(probe)
    real = os.path.realpath(probe)
    best, kind = "", ""
    for point, fstype in mounts():
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def on_fuse(path: str) -> bool:
    """True when ``path`` lives on a FUSE filesystem (fstype fuse, fuse.rclone, fuse.drive, ...)."""
    return fstype_of(path).startswith("fuse")


@dataclass(frozen=True)
class Stage:
    """A local staging folder for one download, and the folder its files move to when complete."""

    id: str
    dir: Path
    target: str

    @property
    def record(self) -> Path:
        return self.dir.with_name(f"{self.id}.json")


@dataclass(frozen=True)
class StageRecord(Record):
    """A stage's record file (``Stage.record``): written here, completed by hook.py (which runs
    without the package and reads and writes the same keys)."""

    target: str = ""
    state: str = "downloading"  # then "placed" or "error" (hook.py)
    error: str = ""  # why the files could not be moved into place


def new_stage(target: str) -> Stage:
    sid = uuid.uuid4().hex[:16]
    root = staging_root()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    stage = Stage(sid, root / sid, target)
    stage.dir.mkdir(mode=0o700)
    paths.write_file(stage.record, json.dumps(StageRecord(target=target).to_info()), mode=0o600)
    return stage


def stage_of(download_dir: str) -> Optional[Stage]:
    """The Stage an aria2 ``dir`` belongs to, if it is one of our staging folders."""
    try:
        rel = Path(download_dir).resolve().relative_to(staging_root().resolve())
    except (ValueError, OSError):
        return None
    if len(rel.parts) != 1:
        return None
    record = read_record(staging_root() / f"{rel.parts[0]}.json")
    if record is None:
        return None
    return Stage(rel.parts[0], staging_root() / rel.parts[0], record.target)


def read_record(path: Path) -> Optional[StageRecord]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return StageRecord.from_info(data) if isinstance(data, dict) else None


def hook_path() -> Path:
    return paths.subdir("aria2") / HOOK_NAME


def error_hook_path() -> Path:
    return paths.subdir("aria2") / ERROR_HOOK_NAME


def install_hook() -> Path:
    """Write the completion and error hooks as executable files of ours (no shell involved when aria2 runs
    them), and notify.py beside them for the events they record."""
    source = Path(__file__).with_name("hook.py").read_text()
    script = f"#!{sys.executable} -I\n" + source
    path = hook_path()
    paths.write_file(path, script, mode=0o700)
    paths.write_file(error_hook_path(), script, mode=0o700)
    notify_source = Path(__file__).resolve().parents[2] / "system" / "notify.py"
    paths.write_file(path.with_name("colabmagic_notify.py"), notify_source.read_text(), mode=0o600)
    return path


def local_free(path: str) -> int:
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and probe != "/":
        probe = os.path.dirname(probe)
    return shutil.disk_usage(probe).free


def space_warning(write_dir: str, size: int, remaining: int) -> Optional[str]:
    """A warning when the disk aria2 writes to has less free space than the download still needs."""
    if size <= 0:
        return None
    free = local_free(write_dir)
    if remaining > free:
        from ... import display

        return (
            f"not enough free disk for this download: it needs {display.human_bytes(remaining)} more "
            f"but {write_dir} has {display.human_bytes(free)} free"
        )
    return None
