"""Fixtures for the demo tests: the shared IPython shell's magics back at their default settings."""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture
def ip(ip: Any) -> Iterator[Any]:
    """The shared shell with every colabmagic setting at its default (the demo's %config lines change them)."""
    for name in ("TunnelMagics", "VncMagics", "Aria2Magics", "DriveMagics"):
        ip.config.pop(name, None)
        magics = ip.magics_manager.registry.get(name)
        if magics is None:
            continue
        for trait in magics.trait_names(config=True):
            if trait != "offline":  # shared by every magic; the autouse fixture sets offline mode
                setattr(magics, trait, magics.trait_defaults(trait))
    yield ip
