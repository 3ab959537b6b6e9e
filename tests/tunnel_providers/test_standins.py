"""The stand-ins hold the product to the real interfaces: its generated configs pass their strict
checks, and they refuse what the real programs refuse.

Tests, not stand-ins: the stand-ins they run (tests/standins/frpc, ngrok, cloudflared) each name
the real source file and version they follow. The example.org addresses are only written into
config files that the stand-ins check; nothing connects to them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.standin_client import standin

from colabmagic.services.tunnels import frp, ngrok
from colabmagic.services.tunnels.base import TunnelConfig


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30)


def test_generated_frpc_config_passes_frpc_verify_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    for proto, options in (("tcp", {"server": "frps.example.org:7000", "remote_port": 6000}),
                           ("http", {"server": "frps.example.org", "domain": "nb.example.org"})):
        path = tmp_path / f"{proto}.toml"
        path.write_text(frp.render(TunnelConfig("web", 8000, proto, options), "tok", 7400, "pw"))
        result = run(standin("frpc"), "verify", "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert "syntax is ok" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace("loginFailExit", "loginFailExitTypo"))
    result = run(standin("frpc"), "verify", "-c", str(bad))
    assert result.returncode != 0 and "unknown field" in result.stderr


def test_generated_ngrok_config_passes_ngrok_config_check_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    import yaml

    for proto in ("http", "tcp"):
        path = tmp_path / f"{proto}.yml"
        path.write_text(yaml.safe_dump(ngrok.config_data(TunnelConfig("web", 8000, proto), "tok", 4040)))
        result = run(standin("ngrok"), "config", "check", "--config", str(path))
        assert result.returncode == 0, result.stderr
    path.write_text(path.read_text() + "no_such_setting: 1\n")
    result = run(standin("ngrok"), "config", "check", "--config", str(path))
    assert result.returncode != 0 and "not found" in result.stderr


def test_cloudflared_refuses_an_unknown_flag() -> None:
    result = run(standin("cloudflared"), "tunnel", "--no-such-flag", "--url", "http://127.0.0.1:1")
    assert result.returncode != 0
    assert "flag provided but not defined: --no-such-flag" in result.stderr
