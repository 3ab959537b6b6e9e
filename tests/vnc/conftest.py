"""Fixtures for the %vnc tests: a free X display and a fresh desktop home.

The desktop runs on a display nobody uses (never :1), with ``$HOME`` in a
temporary folder so XFCE's first-run set-up is exercised and the machine's
own home is left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from support.displays import free_display


@pytest.fixture
def display_number() -> int:
    """A display :N (N >= 20) whose lock, socket and VNC port are all free."""
    return free_display()


@pytest.fixture(scope="session")
def vnc_desktop_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("desktop-home")


@pytest.fixture(autouse=True)
def fresh_home(vnc_desktop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HOME", str(vnc_desktop_home))
    monkeypatch.delenv("VNC_PASSWORD", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    yield vnc_desktop_home




@pytest.fixture(autouse=True)
def desktop_stopped(cm_home: Path) -> Iterator[None]:
    """Stop the desktop with the product's own stop (reverse order) after each test, even on failure."""
    yield
    from colabmagic.services import vnc

    vnc.stop()
