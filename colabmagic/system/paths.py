"""Where colabmagic keeps its files, and whether it may contact the outside world.

Everything colabmagic writes (service records, logs, generated configs,
secrets, downloaded binaries) lives under one home folder, so that a kernel
restart can find it again and a user can inspect or delete it in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "COLABMAGIC_HOME"
OFFLINE_ENV = "COLABMAGIC_OFFLINE"


def home() -> Path:
    """The state folder: $COLABMAGIC_HOME, else a per-user default (spec section 1)."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        path = Path(explicit)
    elif os.geteuid() == 0:
        path = Path("/var/lib/colabmagic")
    else:
        path = Path.home() / ".local" / "state" / "colabmagic"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def subdir(name: str) -> Path:
    """A folder below home (created 0700), e.g. ``subdir("logs")``."""
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def offline() -> bool:
    """True when nothing beyond this machine and the package registries may be contacted."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def write_file(path: Path, data: str | bytes, mode: int = 0o600) -> bool:
    """Write a whole file atomically (temp file + rename) with ``mode``.

    Returns True when the content changed. Re-running with the same data
    leaves the file byte-identical and untouched.
    """
    raw = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == raw:
            os.chmod(path, mode)
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True
