"""A "new runtime" for the identity tests: everything of the old one gone except the identity folder.

``NewRuntimes.next()`` stops every service of the current ``$COLABMAGIC_HOME``
(sshd, tunnel agents), deletes that home (with the host key colabmagic made
there) and points ``$COLABMAGIC_HOME`` at a new, empty one; the kernel's
namespace is reset too. ``printed`` reads the known_hosts line and the Host
block out of ``%tunnel ssh``'s output exactly as the user would copy them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable, List, Tuple

from support.homes import safe_home_dir, stop_services_of


def printed(stdout: str) -> Tuple[str, str]:
    """(known_hosts line, Host block) as printed by ``%tunnel ssh`` (steps 1 and 2 of its output)."""
    lines = stdout.splitlines()
    first = lines.index("1. Append to ~/.ssh/known_hosts (pins this machine's host key):")
    second = lines.index("2. Append to ~/.ssh/config:")
    block: List[str] = []
    for line in lines[second + 1:]:
        if not line.strip():
            break
        block.append(line)
    return lines[first + 1], "\n".join(block) + "\n"


class NewRuntimes:
    """Homes of successive "runtimes"; ``close`` stops and removes every one of them."""

    def __init__(self, monkeypatch: Any, first: Path):
        self.monkeypatch = monkeypatch
        self.homes = [first]

    @property
    def home(self) -> Path:
        return self.homes[-1]

    def next(self, shell: Any) -> Path:
        old = self.home
        stop_services_of(old)
        shutil.rmtree(old, ignore_errors=True)
        assert not old.exists()
        home = safe_home_dir()
        self.homes.append(home)
        self.monkeypatch.setenv("COLABMAGIC_HOME", str(home))
        shell.cell("%reset -f")
        return home

    def close(self) -> None:
        for home in reversed(self.homes):
            if home.exists():
                stop_services_of(home)
                shutil.rmtree(home, ignore_errors=True)


def files_below(*folders: Path) -> Iterable[Path]:
    for folder in folders:
        if folder.exists():
            for root, _dirs, names in os.walk(folder):
                for name in names:
                    yield Path(root) / name


def private_key_bodies(folder: Path) -> List[str]:
    """Long pieces of every private key in the identity folder, to look for in outputs and logs."""
    bodies = []
    for path in folder.iterdir():
        text = path.read_text()
        if "PRIVATE KEY" in text:
            body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
            bodies += [body[i:i + 40] for i in range(0, len(body) - 40, 40)]
    return bodies
