"""A missing provider binary: offline it is never downloaded, and the error names the setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.standin_client import Page, standin

from colabmagic.services import tunnels
from colabmagic.services.tunnels import binaries

CASES = [
    ("frp", "frpc_path", "--server 127.0.0.1:7000 --proto tcp"),
    ("cloudflared", "cloudflared_path", ""),
    ("ngrok", "ngrok_path", ""),
]


@pytest.fixture
def bare_path(ip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with none of the provider binaries, no ngrok where pyngrok puts one, no path settings."""
    from pyngrok import conf

    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(conf, "DEFAULT_NGROK_PATH", str(tmp_path / "no-ngrok" / "ngrok"))
    monkeypatch.setenv("NGROK_AUTHTOKEN", "2ngrokStandInAuthtoken_binaries")
    monkeypatch.setenv("FRP_TOKEN", "frp-token-binaries")
    return empty


@pytest.mark.parametrize("via,setting,extra", CASES)
def test_offline_missing_binary_names_the_setting(ip, page: Page, bare_path: Path, safe_home: Path,
                                                  via: str, setting: str, extra: str) -> None:
    c = ip.cell(f"%tunnel {page.port} --via {via} {extra}", check=False)
    assert isinstance(c.error, binaries.MissingBinaryError)
    message = str(c.error)
    assert f"TunnelMagics.{setting}" in message and "offline" in message
    assert not tunnels.services()
    assert not (safe_home / "bin").exists() or not list((safe_home / "bin").iterdir())


@pytest.mark.parametrize("via,setting,extra", CASES)
def test_a_wrong_path_setting_is_named(ip, page: Page, bare_path: Path, tmp_path: Path,
                                       via: str, setting: str, extra: str) -> None:
    ip.cell(f"%config TunnelMagics.{setting} = '{tmp_path / 'nowhere' / via}'")
    c = ip.cell(f"%tunnel {page.port} --via {via} {extra}", check=False)
    assert isinstance(c.error, binaries.MissingBinaryError)
    assert f"TunnelMagics.{setting}" in str(c.error) and "not an executable" in str(c.error)
    assert not tunnels.services()


def test_found_in_colabmagic_bin_or_on_path(bare_path: Path, safe_home: Path) -> None:
    local = safe_home / "bin"
    local.mkdir(mode=0o700, exist_ok=True)
    os.symlink(standin("cloudflared"), local / "cloudflared")
    assert binaries.resolve("cloudflared") == str(local / "cloudflared")
    os.symlink(standin("frpc"), bare_path / "frpc")
    assert binaries.resolve("frpc") == standin("frpc")
    assert binaries.resolve("frpc", "frpc") == standin("frpc")


def test_ssh_with_a_missing_binary_starts_no_sshd(ip, bare_path: Path, tmp_path: Path) -> None:
    from colabmagic.system import supervisor

    c = ip.cell("%tunnel ssh --via cloudflared --key 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEc7Hc1dKh4v9Q2m9mKx2c8JqZb3X1Jw8c0uXyZp4Q7d me'",
                check=False)
    assert isinstance(c.error, binaries.MissingBinaryError)
    assert "TunnelMagics.cloudflared_path" in str(c.error)
    assert supervisor.running() == []
