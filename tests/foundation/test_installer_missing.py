"""``installer.missing`` asks dpkg once for every package and agrees with asking it one by one."""

from __future__ import annotations

import subprocess

from colabmagic.system import installer


def test_missing_agrees_with_dpkg_package_by_package() -> None:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    asked = ["dpkg", "coreutils", f"libc6:{arch}", "colabmagic-no-such-package", "dpkg", "colabmagic-nor-this"]
    found = installer.missing(asked)
    assert found == ["colabmagic-no-such-package", "colabmagic-nor-this"]
    assert found == [p for p in dict.fromkeys(asked) if not installer.is_installed(p)]
    assert installer.missing([]) == []
