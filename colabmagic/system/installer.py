"""The one way colabmagic installs Debian packages.

Skips what is installed, runs ``apt-get update`` only when apt does not know
a package (or its lists are missing or stale), never installs recommends,
never asks a question, waits for the dpkg lock instead of failing, reports
progress through a callback (a bar in a notebook, text in a terminal), and
on failure raises InstallError with the tail of apt's output. Not root:
``sudo -n`` or a clear error.

On real machines: one third-party source that fails ``apt-get update``
(Colab's images carry several) does not stop packages the other sources
provide; the failing sources are named only when a package still cannot be
had. Distribution services are neither started nor enabled by an install
(a policy-rc.d that answers 101 for the install's duration, an existing one
put back afterwards; the system sshd of a newly installed openssh-server is
disabled), since colabmagic runs its own daemons. FUSE: an installed
``fuse`` (fuse 2, /bin/fusermount) is used as it is; fuse3 is installed only
when neither fusermount exists (the two packages conflict). The apt options
used exist in apt 2.2 (Debian 11), 2.4 (Ubuntu 22.04) and 3.0 (Debian 13).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

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


def known_to_apt(package: str) -> bool:
    """Whether apt has an install candidate for ``package`` (in the lists it has now)."""
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


SOURCE_URL = re.compile(r"((?:https?|ftp|mirror\+https?|mirror\+file)://[^\s']+|\bfile:/[^\s']+)")


def _failed_sources(lines: Sequence[str]) -> List[str]:
    """The archives an ``apt-get update`` run could not read, from its error and warning lines."""
    found: List[str] = []
    for line in lines:
        text = line.strip()
        # apt 2.x writes "E:"/"W:"/"Err:N"; apt 3.0 also "Error:"/"Warning:".
        if not text.startswith(("E:", "W:", "Err:", "Error:", "Warning:")):
            continue
        if text.startswith(("W:", "Warning:")) and "Failed to fetch" not in text and "GPG error" not in text:
            continue
        match = SOURCE_URL.search(text)
        if not match:
            continue
        url = match.group(1).rstrip(":")
        url = url.split("/dists/", 1)[0]
        if url not in found:
            found.append(url)
    return found


def update(progress: Optional[Progress] = None) -> List[str]:
    """``apt-get update``; returns the sources that failed (the others' lists are fresh).

    Raises only when apt failed without naming a failing source (a broken
    apt, a full disk), since then no list can be trusted.
    """
    log = _log_path()
    if progress:
        progress(0.0, "apt-get update")
    start = log.stat().st_size if log.exists() else 0
    code = _run_apt(["apt-get", "update"], log, None, "update")
    with open(log, "rb") as fh:
        fh.seek(start)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    failed = _failed_sources(lines)
    if code != 0 and not failed:
        raise InstallError("apt-get update failed", log=log)
    return failed


def _sources_note(failed: Sequence[str]) -> str:
    if not failed:
        return ""
    return (f"; `apt-get update` could not read {', '.join(failed)} (fix or remove that source under "
            "/etc/apt/sources.list.d if the package comes from it)")


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
    failed_sources: List[str] = []
    if _lists_stale():
        failed_sources = update(progress)
        updated = True
    label = "installing " + ", ".join(todo)
    if progress:
        progress(0.0, label)
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + todo
    with services_held():
        code = _run_apt(argv, log, progress, label)
        if code != 0 and not updated:
            # Stale lists point at files the mirror no longer has (or lack a newer package): refresh once, retry.
            failed_sources = update(progress)
            code = _run_apt(argv, log, progress, label)
    installed = [p for p in todo if is_installed(p)]
    _disable_system_services(installed)
    if code != 0:
        unknown = [p for p in todo if not known_to_apt(p)]
        if unknown:
            raise InstallError(
                f"no such Debian package: {', '.join(unknown)} (not in the archives apt knows after `apt-get update`)"
                + _sources_note(failed_sources),
                log=log,
            )
    if code != 0 or missing(todo):
        raise InstallError(f"apt-get could not install {', '.join(todo)}" + _sources_note(failed_sources),
                           log=log, details=log_tail(log, 20))
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


# --- keeping the distribution's services out of it ---------------------------------------------

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
POLICY_LOCK = Path("/run/lock/colabmagic-policy-rc.lock")
OURS = "#!/bin/sh\n# colabmagic: no service starts while it installs packages (removed when it is done)\nexit 101\n"
# Packages whose system service colabmagic replaces with its own daemon: disabled when newly installed.
SYSTEM_SERVICES = {"openssh-server": ["ssh.service", "ssh.socket"]}


def _saved_path() -> Path:
    return POLICY_RC_D.with_name(POLICY_RC_D.name + ".colabmagic-saved")


def _is_ours(path: Path) -> bool:
    try:
        return path.read_text() == OURS
    except (OSError, UnicodeDecodeError):
        return False


@contextlib.contextmanager
def services_held() -> Iterator[None]:
    """While inside: invoke-rc.d starts no service (policy-rc.d exits 101). Afterwards the
    policy-rc.d that was there before is back byte for byte, or there is none, as before.

    A file lock keeps two colabmagic installs from undoing each other's file; a copy of
    ours left by a crash is replaced by what it hid (kept aside as ``.colabmagic-saved``).
    """
    if os.geteuid() != 0 or not POLICY_RC_D.parent.is_dir():
        yield  # through sudo: apt runs as root, but this process cannot write /usr/sbin
        return
    POLICY_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(POLICY_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = _saved_path()
        try:
            if POLICY_RC_D.exists() and not _is_ours(POLICY_RC_D) and not saved.exists():
                os.replace(POLICY_RC_D, saved)
            paths.write_file(POLICY_RC_D, OURS, mode=0o755)
            yield
        finally:
            if saved.exists():
                os.replace(saved, POLICY_RC_D)
            elif _is_ours(POLICY_RC_D):
                POLICY_RC_D.unlink()
            fcntl.flock(lock, fcntl.LOCK_UN)


def _disable_system_services(installed_now: Sequence[str]) -> None:
    """Undo the boot-time enabling of services whose daemon colabmagic runs itself.

    ``systemctl disable`` works without a running systemd (it edits the unit
    links, and the SysV links through systemd-sysv-install); it stops nothing.
    """
    systemctl = shutil.which("systemctl")
    if os.geteuid() != 0:
        return
    for package in installed_now:
        units = [u for u in SYSTEM_SERVICES.get(package, [])
                 if any(Path(d, u).exists() for d in ("/lib/systemd/system", "/usr/lib/systemd/system"))]
        if systemctl and units:
            subprocess.run([systemctl, "disable", "--quiet", "--"] + units, capture_output=True,
                           stdin=subprocess.DEVNULL)
        elif shutil.which("update-rc.d") and Path("/etc/init.d/ssh").exists() and package == "openssh-server":
            subprocess.run(["update-rc.d", "ssh", "disable"], capture_output=True, stdin=subprocess.DEVNULL)


# --- FUSE -------------------------------------------------------------------------------------


def fusermount() -> Optional[str]:
    """The fusermount there is: fuse3's fusermount3, or fuse 2's fusermount (rclone works with either)."""
    return shutil.which("fusermount3") or shutil.which("fusermount") or \
        next((p for p in ("/bin/fusermount3", "/bin/fusermount") if os.access(p, os.X_OK)), None)


def ensure_fuse(progress: Optional[Progress] = None) -> str:
    """A fusermount, installing fuse3 only when neither fuse3 nor fuse is there (they conflict:
    installing fuse3 would remove the ``fuse`` that Colab's and Kaggle's images carry)."""
    tool = fusermount()
    if tool is None:
        ensure_packages(["fuse3"], progress=progress)
        tool = fusermount()
    if tool is None:
        raise InstallError("fuse3 was installed but no fusermount3 or fusermount was found")
    return tool
