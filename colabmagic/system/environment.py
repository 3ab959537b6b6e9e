"""Facts about the machine: root or sudo, hosted Colab, GPU, free disk, apt reachability.

Used by ``%colabmagic doctor`` and by services that adapt to where they run
(the NVIDIA library folder for SSH sessions, Colab's Drive and port proxy).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlparse

COLAB_TERMS = (
    "Hosted Colab's terms restrict remote desktops, SSH and file-sharing (P2P) on its "
    "runtimes; read research.google.com/colaboratory/faq.html and use these features "
    "only where your plan allows them."
)


def is_root() -> bool:
    return os.geteuid() == 0


def can_sudo() -> bool:
    sudo = shutil.which("sudo")
    if not sudo:
        return False
    return subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0


def is_hosted_colab() -> bool:
    """A Google-hosted Colab runtime (not a local runtime that merely has google.colab)."""
    return bool(os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_BACKEND_VERSION"))


def is_kaggle() -> bool:
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or os.environ.get("KAGGLE_URL_BASE"))


def platform_name() -> str:
    if is_hosted_colab():
        return "hosted Colab"
    if is_kaggle():
        return "Kaggle"
    return "generic Linux"


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
