"""Events for the magics layer: what happened since the last cell, and the notify setting.

A thin service over system/notify.py (standard library only, so reading it at
``%load_ext`` costs little): the ``%colabmagic`` magic prints ``unseen`` after
each cell and hands the ``notify`` setting to ``check_setting``/``configure``.
"""

from __future__ import annotations

import os
from typing import List, Tuple

from ..system import notify

SHOWN_EVENTS = 10  # events printed under one cell; the rest are counted


def end_offset() -> int:
    """Where the events file ends now: what happened before this point is not replayed."""
    return notify.end_offset()


def unseen(offset: int) -> Tuple[List[str], int]:
    """The lines to print for the events recorded since ``offset`` (a background sync that failed, a
    download that finished, a tunnel's new address, a daemon that gave up), and the new offset."""
    events, offset = notify.read_since(offset)
    fresh = [e for e in events if not (e.get("shown") and e.get("pid") == os.getpid())]  # printed already
    lines = [f"colabmagic: {event.get('message', event.get('event'))}" for event in fresh[:SHOWN_EVENTS]]
    if len(fresh) > SHOWN_EVENTS:
        lines.append(f"colabmagic: ... and {len(fresh) - SHOWN_EVENTS} more events in {notify.events_path()}")
    return lines, offset


def check_setting(value: str) -> str:
    """The notify setting, checked (ValueError with a one-line reason)."""
    return notify.check_setting(value)


def configure(setting: str) -> str:
    """Apply the notify setting; what to tell the user."""
    return notify.configure(setting)
