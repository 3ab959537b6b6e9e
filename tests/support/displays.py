"""One way for every test to choose an X display :N (N >= 20, never a host test's :1) that nobody uses."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from colabmagic.system import probes


def _bindable(port: int) -> bool:
    """Free to bind on loopback without SO_REUSEADDR: nobody listens and no closed connection of an
    earlier test is still in TIME_WAIT on it (a plain bind, as a test's port holder does, would fail)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def display_free(number: int) -> bool:
    """No lock file, no X socket (path or abstract), and the VNC (5900+N) and X (6000+N) ports free."""
    abstract = f"@/tmp/.X11-unix/X{number}"
    return (not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists()
            and abstract not in Path("/proc/net/unix").read_text()
            and not probes.port_open(5900 + number) and not probes.port_open(6000 + number)
            and _bindable(5900 + number))


def free_display() -> int:
    for number in range(20 + os.getpid() % 50, 99):
        if display_free(number):
            return number
    raise AssertionError("no free X display between :20 and :98")
