"""``%tunnel?`` (IPython's inspector) shows each magic's full help, built on first request."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("name,expected", [
    ("tunnel", ["tunnel [-h]", "--via", "--remote-port"]),
    ("vnc", ["vnc [-h]", "--display"]),
    ("aria2", ["aria2 [-h]", "--wait", "--watch"]),
    ("drive_sync", ["drive_sync [-h]", "--unmount"]),
    ("colabmagic", ["colabmagic [-h]", "status"]),
])
def test_question_mark_shows_the_full_help(ip: Any, name: str, expected: list) -> None:
    magic = ip.find_magic(name)
    assert magic is not None
    shown = ip.inspector.info(magic)["docstring"]
    for text in expected:
        assert text in shown, (name, text, shown[:400])
    listing = ip.magics_manager.lsmagic_docs(brief=True)
    assert listing["line"][name]  # %lsmagic's one line is there too

