"""Print the versions a platform-matrix root ended up with (run inside the chroot after its tests).

The packages are the ones colabmagic's installer put in from the release's own apt during the
run (missing ones print as "-"). Upstream versions: Debian's epoch, revision and +dfsg/+debian suffixes dropped.
README.md's "Platform matrix" table lists what this printed.
"""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path

PACKAGES = (
    ("OpenSSH", "openssh-server"),
    ("rclone", "rclone"),
    ("aria2", "aria2"),
    ("TigerVNC", "tigervnc-standalone-server"),
    ("XFCE", "xfce4"),
    ("apt", "apt"),
)


def upstream(version: str) -> str:
    version = version.split(":", 1)[-1]
    version = version.rsplit("-", 1)[0] if "-" in version else version
    return re.split(r"[+~]", version)[0]


def installed(package: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", "--", package],
                       capture_output=True, text=True)
    status, _, version = r.stdout.partition(" ")
    return upstream(version) if r.returncode == 0 and status == "installed" else "-"


def main() -> None:
    release = Path("/etc/debian_version").read_text().strip()
    found = [f"Debian {release}", f"Python {platform.python_version()}"]
    found += [f"{label} {installed(package)}" for label, package in PACKAGES]
    print(", ".join(found))


if __name__ == "__main__":
    main()
