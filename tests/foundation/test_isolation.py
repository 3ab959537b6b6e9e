"""Each test's shell is new: a %config value, a magic or a name set in one test is gone in the next."""

from __future__ import annotations

from typing import Any, List

SEEN: List[Any] = []


def test_first_test_changes_its_shell(ip: Any) -> None:
    ip.cell("%config TunnelMagics.timeout = 5.0")
    ip.cell("%config ColabMagicsBase.offline = True")
    ip.cell("left_behind = 1")
    SEEN.append(ip)
    assert ip.magics_manager.registry["TunnelMagics"].timeout == 5.0


def test_next_test_sees_none_of_it(ip: Any) -> None:
    assert SEEN and ip is not SEEN[0]
    assert ip.magics_manager.registry["TunnelMagics"].timeout == 60.0
    assert ip.magics_manager.registry["VncMagics"].offline is False
    assert "left_behind" not in ip.user_ns
    assert "TunnelMagics" not in ip.config
    hooks = [cb for cbs in ip.events.callbacks.values() for cb in cbs]
    assert len(hooks) == len({id(cb) for cb in hooks})
