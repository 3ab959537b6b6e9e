"""colabmagic: ``%load_ext colabmagic`` for SSH, remote desktop, downloads and verified Drive sync.

Loading is fast: only the magics layer is imported here; services load on
first use.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__


def load_ipython_extension(ipython: Any) -> None:
    """Register colabmagic's magics; running it again re-registers the same instances harmlessly."""
    from .magics.aria2 import Aria2Magics
    from .magics.base import ensure_state_before_cells, get_state
    from .magics.core import ColabMagics
    from .magics.drive import DriveMagics
    from .magics.tunnel import TunnelMagics
    from .magics.vnc import VncMagics

    tunnel = TunnelMagics(shell=ipython)
    # %vnc start --via reads %config TunnelMagics through this one method, as a plain config object.
    vnc = VncMagics(shell=ipython, tunnel_settings=tunnel.tunnel_settings)
    for magics in (ColabMagics(shell=ipython), tunnel, vnc, Aria2Magics(shell=ipython), DriveMagics(shell=ipython)):
        ipython.register_magics(magics)
    get_state(ipython)
    ensure_state_before_cells(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Services keep running (they are meant to survive the kernel); only the magics go."""


__all__ = ["__version__", "load_ipython_extension"]
