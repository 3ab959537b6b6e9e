"""ngrok through %tunnel against the ngrok agent stand-in; and pyngrok driving the same stand-in."""

from __future__ import annotations

import getpass
import stat
from pathlib import Path

import pytest
from support.standin_client import (
    Page,
    assert_secret_hidden,
    fetch_until,
    kill_agent,
    standin,
    tcp_fetch_until,
)

from colabmagic.services import tunnels
from colabmagic.system import supervisor

TOKEN = "2ngrokStandInAuthtoken_0123456789abcdef"


@pytest.fixture
def ngrok_ready(ip, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    ip.cell(f"%config TunnelMagics.ngrok_path = '{standin('ngrok')}'")
    return TOKEN


def test_http_tunnel_serves_the_page_and_a_restart_announces_the_new_url(ip, page: Page, ngrok_ready: str,
                                                                        safe_home: Path) -> None:
    c = ip.cell(f"%tunnel {page.port} --via ngrok")
    t = c.value
    assert t.provider == "ngrok" and t.public_url.startswith("https://")
    assert t.public_url.endswith(".ngrok-free.app")
    assert page.marker in fetch_until(t.public_url, page.marker)

    old_pid = kill_agent(t.name)
    listing = ip.cell("%tunnel list")
    after = tunnels.get(t.name)
    assert after.pid != old_pid and after.restarts >= 1
    assert after.public_url != t.public_url
    assert "new public address" in listing.stdout and after.public_url in listing.stdout
    assert page.marker in fetch_until(after.public_url, page.marker)

    config = Path(supervisor.adopt(tunnels.service_name(t.name)).info["config_file"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert_secret_hidden(ngrok_ready, safe_home, [c.output, listing.output, repr(t), repr(after)])


def test_tcp_tunnel_carries_raw_tcp(ip, page: Page, ngrok_ready: str) -> None:
    t = ip.cell(f"%tunnel {page.port} --via ngrok --proto tcp --name raw").value
    assert t.public_host == "0.tcp.ngrok.io" and t.public_url is None
    assert page.marker in tcp_fetch_until(t.public_host, t.public_port, page.marker)


def test_missing_authtoken_is_a_clear_error_and_starts_nothing(ip, page: Page, safe_home: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    monkeypatch.setattr(getpass, "getpass", lambda *_a, **_k: "")  # the user just presses Enter
    ip.cell(f"%config TunnelMagics.ngrok_path = '{standin('ngrok')}'")
    c = ip.cell(f"%tunnel {page.port} --via ngrok", check=False)
    assert c.error is not None and "NGROK_AUTHTOKEN" in str(c.error)
    assert not tunnels.services()
    assert not (safe_home / "tunnels").exists() or not list((safe_home / "tunnels").glob("*"))


def test_pyngrok_can_drive_the_standin_as_its_ngrok_path(page: Page, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in speaks the interface pyngrok relies on (start --none, logs, /api/endpoints)."""
    from pyngrok import conf, ngrok

    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    settings = conf.PyngrokConfig(ngrok_path=standin("ngrok"), config_path=str(tmp_path / "ngrok.yml"),
                                  startup_timeout=30)
    try:
        tunnel = ngrok.connect(str(page.port), pyngrok_config=settings)
        assert tunnel.public_url.startswith("https://")
        assert page.marker in fetch_until(tunnel.public_url, page.marker)
        assert [t.public_url for t in ngrok.get_tunnels(pyngrok_config=settings)] == [tunnel.public_url]
        ngrok.disconnect(tunnel.public_url, pyngrok_config=settings)
        assert ngrok.get_tunnels(pyngrok_config=settings) == []
    finally:
        ngrok.kill(pyngrok_config=settings)


def test_running_the_same_tunnel_again_reuses_the_agent(ip, page: Page, ngrok_ready: str) -> None:
    first = ip.cell(f"%tunnel {page.port} --via ngrok").value
    again = ip.cell(f"%tunnel {page.port} --via ngrok")
    assert "reused" in again.stdout
    assert again.value.pid == first.pid and again.value.public_url == first.public_url
