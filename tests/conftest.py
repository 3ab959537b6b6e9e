"""Shared test fixtures: an isolated colabmagic home, offline mode, and a fresh IPython shell.

Every test gets its own ``$COLABMAGIC_HOME`` and ``COLABMAGIC_OFFLINE=1``;
whatever services it started under that home are stopped in teardown, even
when the test fails. ``ip`` is a fresh InteractiveShell with
``%load_ext colabmagic`` already run, driven in the user's own syntax.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest


@pytest.fixture(autouse=True)
def cm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "cmhome"
    home.mkdir()
    monkeypatch.setenv("COLABMAGIC_HOME", str(home))
    monkeypatch.setenv("COLABMAGIC_OFFLINE", "1")
    yield home
    from colabmagic.system import supervisor

    os.environ["COLABMAGIC_HOME"] = str(home)
    for svc in sorted(supervisor.running(), key=lambda s: s.started_at, reverse=True):
        svc.stop()


class Cell:
    """The outcome of one cell: its result, captured output and error."""

    def __init__(self, result: Any, stdout: str, stderr: str):
        self.result = result
        self.value = result.result
        self.error = result.error_in_exec or result.error_before_exec
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def ip(capfd: pytest.CaptureFixture) -> Iterator[Any]:
    """A fresh IPython shell with colabmagic loaded. ``ip.cell(src)`` runs a cell and returns a Cell."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    if shell is None:  # already started in this process: make a clean one
        shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    # A new kernel has no extension loaded and no %config of ours: forget the previous test's.
    shell.extension_manager.loaded.discard("colabmagic")
    for section in [name for name in shell.config if name.endswith("Magics") or name == "ColabMagicsBase"]:
        if section.startswith(("Tunnel", "Vnc", "Aria2", "Drive", "ColabMagics")):
            del shell.config[section]

    def cell(source: str, check: bool = True) -> Cell:
        capfd.readouterr()
        result = shell.run_cell(source, store_history=True)
        out, err = capfd.readouterr()
        c = Cell(result, out, err)
        if check and c.error is not None:
            raise AssertionError(f"cell failed: {source!r}\n{out}\n{err}") from c.error
        return c

    shell.cell = cell  # type: ignore[attr-defined]
    cell("%load_ext colabmagic")
    yield shell
    shell.cell = None  # type: ignore[attr-defined]
