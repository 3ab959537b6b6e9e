"""Facts about the machine: root or sudo, which platform, GPU, free disk, apt reachability, versions.

Used by ``%colabmagic doctor`` and by services that adapt to where they run
(the NVIDIA library folder for SSH sessions, Colab's Drive and port proxy).

Platforms are told apart by what only each has. Kaggle's image is built
from Colab's (Kaggle/docker-python, Dockerfile.tmpl: ``FROM
us-docker.pkg.dev/colab-images/public/runtime``), so it carries
COLAB_RELEASE_TAG and the ``google.colab`` package too; Kaggle sets
KAGGLE_KERNEL_RUN_TYPE and KAGGLE_URL_BASE, and is checked first. Hosted
Colab is recognised by what Colab's own code needs from the VM it runs on
(colabtools, google/colab/drive.py): the file /var/colab/hostname and the
credential address TBE_EPHEM_CREDS_ADDR / TBE_CREDS_ADDR. A Colab image run
elsewhere (a local runtime) has COLAB_RELEASE_TAG but neither of those.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlparse

COLAB_TERMS = (
    "Hosted Colab's terms restrict remote desktops, SSH and file-sharing (P2P) on its "
    "runtimes, and what is allowed differs by plan (free or paid); read "
    "research.google.com/colaboratory/faq.html and use these features only where your plan allows them."
)
COLAB_OWN_REMOTE_ACCESS = (
    "Google offers its own remote access to Colab runtimes: the Colab extension for VS Code, "
    "and `colab ssh` in google-colab-cli."
)
COLAB_HOSTNAME_FILE = "/var/colab/hostname"  # google.colab.drive.mount refuses to run without it
COLAB_CREDS_ENV = ("TBE_EPHEM_CREDS_ADDR", "TBE_CREDS_ADDR")
KAGGLE_ENV = ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE")
KAGGLE_WORKING = "/kaggle/working"


def is_root() -> bool:
    return os.geteuid() == 0


def can_sudo() -> bool:
    sudo = shutil.which("sudo")
    if not sudo:
        return False
    return subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0


def is_kaggle() -> bool:
    """A Kaggle notebook (whose image, built from Colab's, also sets COLAB_RELEASE_TAG)."""
    return any(os.environ.get(name) for name in KAGGLE_ENV)


def is_hosted_colab() -> bool:
    """A Google-hosted Colab runtime: not Kaggle, not a local runtime that merely has google.colab."""
    if is_kaggle():
        return False
    return os.path.exists(COLAB_HOSTNAME_FILE) or any(os.environ.get(name) for name in COLAB_CREDS_ENV)


def platform_name() -> str:
    if is_kaggle():
        return "Kaggle"
    if is_hosted_colab():
        return "hosted Colab"
    return "generic Linux"


def distribution() -> str:
    """The distribution and its version, from /etc/os-release (e.g. "Ubuntu 22.04.5 LTS")."""
    fields = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip('"')
        break
    name = fields.get("PRETTY_NAME") or " ".join(filter(None, [fields.get("NAME"), fields.get("VERSION")]))
    if not name:
        return "unknown (no /etc/os-release)"
    try:
        point = Path("/etc/debian_version").read_text().strip()
    except OSError:
        point = ""
    # Debian's PRETTY_NAME says "12 (bookworm)"; the point release is in /etc/debian_version.
    if fields.get("ID") == "debian" and point[:1].isdigit() and point not in name:
        name += f", {point}"
    return name


VERSION_WORD = re.compile(r"\d+(?:\.\d+)+(?:p\d+)?")


def _first_version(argv: List[str], prefix: str = "") -> Optional[str]:
    """The first version number in what ``argv`` prints (stdout or stderr), after ``prefix``."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (result.stdout or "") + "\n" + (result.stderr or "")
    start = text.find(prefix) if prefix else 0
    match = VERSION_WORD.search(text, max(start, 0))
    return match.group(0) if match else None


def tool_versions() -> Dict[str, Optional[str]]:
    """Versions of the programs colabmagic drives, as found on PATH (None: not installed)."""
    found: Dict[str, Optional[str]] = {}
    ssh = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/sbin")
    found["OpenSSH"] = _first_version([ssh, "-V"], "OpenSSH_") if ssh else None
    if found["OpenSSH"] is None and shutil.which("ssh"):
        found["OpenSSH"] = _first_version(["ssh", "-V"], "OpenSSH_")
    rclone = shutil.which("rclone")
    found["rclone"] = _first_version([rclone, "version"], "rclone v") if rclone else None
    aria2 = shutil.which("aria2c")
    found["aria2"] = _first_version([aria2, "--version"], "aria2 version") if aria2 else None
    xvnc = shutil.which("Xvnc") or shutil.which("Xtigervnc")
    found["TigerVNC"] = _first_version([xvnc, "-version"], "TigerVNC") if xvnc else None
    return found


def free_disk(path: str = "/") -> int:
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class Gpu:
    name: str
    driver_libs: Optional[str]


def gpus() -> List[Gpu]:
    """NVIDIA GPUs seen by the driver, without loading any CUDA library."""
    found: List[Gpu] = []
    root = Path("/proc/driver/nvidia/gpus")
    libs = nvidia_lib_dir()
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            name = "NVIDIA GPU"
            try:
                for line in (entry / "information").read_text().splitlines():
                    if line.startswith("Model:"):
                        name = line.split(":", 1)[1].strip()
            except OSError:
                pass
            found.append(Gpu(name, libs))
    return found


def nvidia_lib_dir() -> Optional[str]:
    """The folder holding libcuda / libnvidia-ml, where one exists (Colab: /usr/lib64-nvidia)."""
    for candidate in ("/usr/lib64-nvidia", "/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu"):
        if list(Path(candidate).glob("libnvidia-ml.so*")) or list(Path(candidate).glob("libcuda.so*")):
            return candidate
    return None


def apt_sources() -> List[str]:
    """Hosts apt fetches from (from sources.list and deb822 .sources files)."""
    hosts: List[str] = []
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0]  # a commented-out mirror is not a source
            for word in line.split():
                if word.startswith(("http://", "https://")):
                    host = urlparse(word).hostname
                    if host and host not in hosts:
                        hosts.append(host)
    return hosts


def apt_reachable(timeout: float = 3.0) -> Optional[bool]:
    """True if the first apt archive answers on its port; None if apt has no sources."""
    if not shutil.which("apt-get"):
        return None
    hosts = apt_sources()
    if not hosts:
        return None
    for port in (80, 443):
        try:
            with socket.create_connection((hosts[0], port), timeout=timeout):
                return True
        except OSError:
            continue
    return False
