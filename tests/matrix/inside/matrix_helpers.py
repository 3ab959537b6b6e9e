"""Independent checks for the platform matrix's tests: dpkg's view of a package, /etc/os-release, sha256."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Dict


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_version(package: str) -> str:
    """The installed version of a Debian package ("" when not installed), asked of dpkg."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", "--", package],
                       capture_output=True, text=True)
    status, _, version = r.stdout.partition(" ")
    return version if r.returncode == 0 and status == "installed" else ""


def os_release() -> Dict[str, str]:
    fields = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip('"')
    return fields
