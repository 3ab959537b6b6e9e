"""Where colabmagic keeps its files, and whether it may contact the outside world.

Everything colabmagic writes (service records, logs, generated configs,
secrets, downloaded binaries) lives under one home folder, so that a kernel
restart can find it again and a user can inspect or delete it in one place.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import UnsafeHomeError

HOME_ENV = "COLABMAGIC_HOME"
OFFLINE_ENV = "COLABMAGIC_OFFLINE"


def home() -> Path:
    """The state folder: $COLABMAGIC_HOME, else a per-user default (spec section 1).

    It must be a real folder owned by this user that no one else can write to
    (``check_home``): the keeper runs as root whatever a spec file there says.
    """
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        path = Path(explicit)
    elif os.geteuid() == 0:
        path = Path("/var/lib/colabmagic")
    else:
        path = Path.home() / ".local" / "state" / "colabmagic"
    if _ours_0700(path):  # the common case, checked afresh on every call: one lstat
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    check_home(path)
    os.chmod(path, 0o700)
    return path


def _ours_0700(path: Path) -> bool:
    """True when ``path`` is a real folder (not a symlink) of this user with mode 0700 exactly."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700


def check_home(path: Path) -> None:
    """Raise UnsafeHomeError unless ``path`` is a folder (not a symlink) owned by us, not group/other-writable.

    A home another local user made first (say under /tmp) would let that user
    swap a spec file between its write and the keeper's read.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafeHomeError(f"colabmagic's home {path} cannot be used: {exc.strerror}") from None
    fix = f"set {HOME_ENV} to a folder of your own, or remove {path} so colabmagic makes it"
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeHomeError(f"colabmagic's home {path} is a symlink, not a real folder: {fix}")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeHomeError(f"colabmagic's home {path} is not a folder: {fix}")
    if st.st_uid != os.geteuid():
        raise UnsafeHomeError(f"colabmagic's home {path} belongs to uid {st.st_uid}, not to you "
                              f"(uid {os.geteuid()}): {fix}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeHomeError(f"colabmagic's home {path} is writable by other users (mode "
                              f"{oct(stat.S_IMODE(st.st_mode))}): `chmod 700 {path}`, or {fix}")


def subdir(name: str) -> Path:
    """A folder below home (created 0700), e.g. ``subdir("logs")``."""
    path = home() / name
    if _ours_0700(path):
        return path
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def offline(setting: bool = False) -> bool:
    """True when nothing beyond this machine and the package registries may be contacted.

    ``setting`` is ``%config ColabMagicsBase.offline`` as a service's config object carries it;
    the environment variable turns it on for the whole process (and the daemons it starts).
    """
    return setting or os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def write_file(path: Path, data: str | bytes, mode: int = 0o600, durable: bool = True) -> bool:
    """Write a whole file atomically (temp file + rename) with ``mode``.

    Returns True when the content changed. Re-running with the same data
    leaves the file byte-identical and untouched. ``durable``: on disk
    (fsync) before the rename, so even a machine crash leaves the old or the
    new content. Files written afresh on every start (a daemon's config, the
    supervisor's records) pass False: an fsync costs milliseconds (tens on a
    busy disk) on the path a user waits on, and after a machine crash they
    are written again anyway; the rename alone keeps them whole for every
    reader while the machine runs.
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
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True
