"""A tunnel's new public address (its agent was restarted) is notified: found after the next cell, even one
that has nothing to do with tunnels; the webhook gets the new and the old address and no secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from standin_client import Page, kill_agent, standin
from webhook import assert_no_canary, enable

from colabmagic.services import tunnels
from colabmagic.system import supervisor


def test_a_changed_address_is_notified_after_the_next_cell(ip: Any, page: Page, cm_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ip.cell(f"%config TunnelMagics.cloudflared_path = '{standin('cloudflared')}'")
    receiver = enable(ip, monkeypatch)
    try:
        t = ip.cell(f"%tunnel {page.port} --via cloudflared").value
        old_pid = kill_agent(t.name)
        assert supervisor.wait_restarted(supervisor.adopt(tunnels.service_name(t.name)), old_pid, timeout=30)
        assert tunnels.wait_public(t.name, timeout=30)
        c = ip.cell("x = 1")  # any cell: the check runs after it
        after = tunnels.get(t.name)
        assert after is not None and after.public_url != t.public_url
        event = receiver.wait_for("tunnel_address_changed", timeout=30)
        assert event is not None, "no tunnel_address_changed notification"
        assert event["tunnel"] == t.name and event["provider"] == "cloudflared"
        assert event["address"] == after.public_url and event["previous"] == t.public_url
        assert c.stdout.count("new public address") == 1  # said once, not again as an event line
        assert_no_canary(receiver, cm_home)
    finally:
        receiver.stop()
