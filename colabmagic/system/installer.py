"""The one way colabmagic installs Debian packages.

Skips what is installed, runs ``apt-get update`` only when apt does not know
a package (or its lists are missing or stale), never installs recommends,
never asks a question, waits for the dpkg lock instead of failing, reports
progress through a callback (a bar in a notebook, text in a terminal), and
on failure raises InstallError with the tail of apt's output. Not root:
``sudo -n`` or a clear error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..errors import BadInputError, InstallError, NotRootError, log_tail
from . import paths

Progress = Callable[[float, str], None]
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?$")
LISTS = Path("/var/lib/apt/lists")
LOCK_TIMEOUT = 600  # seconds apt waits for another apt/dpkg to let go of the lock
STALE_LISTS = 7 * 24 * 3600


def _privileged(argv: List[str]) -> List[str]:
    if os.geteuid() == 0:
        return argv
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0:
        return [sudo, "-n", "--"] + argv
    raise NotRootError(
        "installing Debian packages needs root or passwordless sudo "
        "(run the notebook as root, or allow `sudo -n` for this user)"
    )


def _check_names(packages: Sequence[str]) -> List[str]:
    names = list(dict.fromkeys(packages))
    for name in names:
        if not PACKAGE_NAME.match(name):
            raise BadInputError(f"not a Debian package name: {name!r}")
    return names


def is_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", "--", package],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and result.stdout.strip() == "installed"


def missing(packages: Sequence[str]) -> List[str]:
    """The packages of ``packages`` that are not installed, asked of dpkg in one call (not one per package)."""
    names = _check_names(packages)
    if not names:
        return []
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${db:Status-Status}\n", "--", *names],
        capture_output=True,
        text=True,
    )  # exits 1 when some name is unknown to dpkg, and still lists the others
    installed = set()
    for line in result.stdout.splitlines():
        name, _, status = line.partition("\t")
        if status.strip() == "installed":
            installed.add(name)
    return [p for p in names if p not in installed and p.split(":", 1)[0] not in installed]


def _known_to_apt(package: str) -> bool:
    result = subprocess.run(
        ["apt-cache", "policy", "--", package], capture_output=True, text=True
    )
    return "Candidate:" in result.stdout and "Candidate: (none)" not in result.stdout


def _lists_stale() -> bool:
    lists = list(LISTS.glob("*_Packages")) + list(LISTS.glob("*_Packages.lz4"))
    if not lists:
        return True
    newest = max(p.stat().st_mtime for p in lists)
    return time.time() - newest > STALE_LISTS


def _env() -> dict:
    env = dict(os.environ)
    env.update(DEBIAN_FRONTEND="noninteractive", APT_LISTCHANGES_FRONTEND="none", LC_ALL="C")
    return env


def _run_apt(argv: List[str], log: Path, progress: Optional[Progress], label: str) -> int:
    """Run an apt-get command, streaming APT::Status-Fd lines into ``progress``."""
    read_fd, write_fd = os.pipe()
    full = _privileged(
        argv[:1]
        + [
            "-o", f"APT::Status-Fd={write_fd}",
            "-o", f"DPkg::Lock::Timeout={LOCK_TIMEOUT}",
            "-o", "Dpkg::Use-Pty=0",
            "-o", "Dpkg::Options::=--force-confdef",
            "-o", "Dpkg::Options::=--force-confold",
        ]
        + argv[1:]
    )
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(full)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=_env(), pass_fds=(write_fd,),
        )
    os.close(write_fd)

    def pump() -> None:
        with os.fdopen(read_fd, "r", errors="replace") as status:
            for line in status:
                kind, _, rest = line.strip().partition(":")
                parts = rest.split(":", 2)
                if len(parts) < 3 or progress is None:
                    continue
                try:
                    pct = float(parts[1])
                except ValueError:
                    continue
                if kind == "dlstatus":
                    progress(0.4 * pct / 100, f"{label}: {parts[2]}")
                elif kind == "pmstatus":
                    progress(0.4 + 0.6 * pct / 100, f"{label}: {parts[2]}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    code = proc.wait()
    reader.join(timeout=5)
    return code


def _log_path() -> Path:
    return paths.subdir("logs") / "apt.log"


def update(progress: Optional[Progress] = None) -> None:
    log = _log_path()
    if progress:
        progress(0.0, "apt-get update")
    if _run_apt(["apt-get", "update"], log, None, "update") != 0:
        raise InstallError("apt-get update failed", log=log)


def ensure_packages(packages: Sequence[str], progress: Optional[Progress] = None) -> List[str]:
    """Install whatever of ``packages`` is missing; return the names installed (empty if none)."""
    todo = missing(packages)
    if not todo:
        return []
    log = _log_path()
    # Fresh lists: install at once. Asking apt-cache first costs seconds per package (it loads the
    # whole cache each time); a package apt does not know makes the install fail, and the
    # update-and-retry below handles that the same way.
    updated = False
    if _lists_stale():
        update(progress)
        updated = True
    label = "installing " + ", ".join(todo)
    if progress:
        progress(0.0, label)
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + todo
    code = _run_apt(argv, log, progress, label)
    if code != 0 and not updated:
        # Stale lists point at files the mirror no longer has (or lack a newer package): refresh once, retry.
        update(progress)
        code = _run_apt(argv, log, progress, label)
    if code != 0:
        unknown = [p for p in todo if not _known_to_apt(p)]
        if unknown:
            raise InstallError(
                f"no such Debian package: {', '.join(unknown)} (not in the archives apt knows after `apt-get update`)",
                log=log,
            )
    if code != 0 or missing(todo):
        raise InstallError(f"apt-get could not install {', '.join(todo)}", log=log, details=log_tail(log, 20))
    if progress:
        progress(1.0, f"installed {', '.join(todo)}")
    return todo


def remove_packages(packages: Sequence[str], progress: Optional[Progress] = None, purge: bool = False) -> List[str]:
    """Remove whichever of ``packages`` is installed; return their names."""
    present = [p for p in _check_names(packages) if is_installed(p)]
    if not present:
        return []
    log = _log_path()
    label = "removing " + ", ".join(present)
    argv = ["apt-get", "purge" if purge else "remove", "-y", "-q"] + present
    if _run_apt(argv, log, progress, label) != 0:
        raise InstallError(f"apt-get could not remove {', '.join(present)}", log=log, details=log_tail(log, 20))
    if progress:
        progress(1.0, f"removed {', '.join(present)}")
    return present
