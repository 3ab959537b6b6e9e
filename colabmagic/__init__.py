"""colabmagic: ``%load_ext colabmagic`` for SSH, remote desktop, downloads and verified Drive sync.

Loading is fast: only the magics layer is imported here; services load on
first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ._version import __version__

# (module, class) of every Magics class; a module that does not exist yet is skipped.
MAGICS = [
    ("colabmagic.magics.core", "ColabMagics"),
    ("colabmagic.magics.tunnel", "TunnelMagics"),
    ("colabmagic.magics.vnc", "VncMagics"),
    ("colabmagic.magics.aria2", "Aria2Magics"),
    ("colabmagic.magics.drive", "DriveMagics"),
]


def load_ipython_extension(ipython: Any) -> None:
    """Register colabmagic's magics; running it again re-registers the same instances harmlessly."""
    from .magics.base import ensure_state_before_cells, get_state, show_events_after_cells

    for module_name, class_name in MAGICS:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        ipython.register_magics(getattr(module, class_name))
    get_state(ipython)
    ensure_state_before_cells(ipython)
    show_events_after_cells(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Services keep running (they are meant to survive the kernel); only the magics go."""


__all__ = ["__version__", "load_ipython_extension"]
