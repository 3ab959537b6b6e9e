"""Test homes: stop what a colabmagic home started, and make a home outside /tmp.

sshd's StrictModes refuses an authorized_keys file below a world-writable
folder such as /tmp, so tests that need the home's own copy use
``safe_home_dir`` (under root's cache folder, 0700 all the way).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

SAFE_ROOT = Path.home() / ".cache" / "colabmagic-tests"


def stop_services_of(home: Path) -> None:
    """Stop every service started under ``home``, newest first."""
    from colabmagic.system import supervisor

    os.environ["COLABMAGIC_HOME"] = str(home)
    for svc in sorted(supervisor.running(), key=lambda s: s.started_at, reverse=True):
        svc.stop()


def safe_home_dir() -> Path:
    """A new colabmagic home under root's own cache folder (0700 all the way), not below /tmp."""
    SAFE_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(SAFE_ROOT, 0o700)
    return Path(tempfile.mkdtemp(prefix="home-", dir=SAFE_ROOT))


@contextlib.contextmanager
def moved_home(monkeypatch: Any) -> Iterator[Path]:
    """``$COLABMAGIC_HOME`` set to a new ``safe_home_dir()``; its services stopped and it removed after."""
    home = safe_home_dir()
    monkeypatch.setenv("COLABMAGIC_HOME", str(home))
    try:
        yield home
    finally:
        stop_services_of(home)
        shutil.rmtree(home, ignore_errors=True)
