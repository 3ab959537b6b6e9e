"""colabmagic: ``%load_ext colabmagic`` for SSH, remote desktop, downloads and verified Drive sync.

Loading is fast: only the magics layer is imported here; services load on
first use.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__


def load_ipython_extension(ipython: Any) -> None:
    """Register colabmagic's magics and their event hooks (one set: a second load replaces the first)."""
    from .magics.aria2 import Aria2Magics
    from .magics.base import get_state, unregister
    from .magics.core import ColabMagics
    from .magics.drive import DriveMagics
    from .magics.tunnel import TunnelMagics
    from .magics.vnc import VncMagics

    unregister(ipython)
    tunnel = TunnelMagics(shell=ipython)
    # %vnc start --via reads %config TunnelMagics through this one method, as a plain config object.
    vnc = VncMagics(shell=ipython, tunnel_settings=tunnel.tunnel_settings)
    drive = DriveMagics(shell=ipython)
    # %colabmagic status shows the Drive mount of %config DriveMagics.mountpoint.
    status = ColabMagics(shell=ipython, drive_mountpoints=lambda: [drive.mountpoint] if drive.mountpoint else [])
    for magics in (status, tunnel, vnc, Aria2Magics(shell=ipython), drive):
        ipython.register_magics(magics)
    get_state(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo exactly what loading did: the magics, their event hooks and ``_colabmagic``.

    Services keep running (they are meant to survive the kernel).
    """
    from .magics.base import STATE_NAME, unregister

    unregister(ipython)
    ipython.user_ns.pop(STATE_NAME, None)
    ipython.user_ns_hidden.pop(STATE_NAME, None)


__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]
