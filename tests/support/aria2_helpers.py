"""Small helpers shared by the %aria2 tests (a checksum, a bounded wait, a FUSE mount check)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from colabmagic.system import probes

from .files import sha256  # noqa: F401  (the aria2 tests' checksum)


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    if not probes.wait_for(predicate, timeout=timeout, interval=0.1):
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def fuse_mounted(point: str) -> bool:
    real = os.path.realpath(point)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and fields[4] == real and right.startswith("fuse"):
            return True
    return False
