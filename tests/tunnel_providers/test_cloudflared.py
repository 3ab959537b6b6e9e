"""cloudflared quick tunnels through %tunnel, against the cloudflared stand-in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.standin_client import STANDINS, Page, fetch_until, kill_agent, standin

from colabmagic.services import tunnels
from colabmagic.services.tunnels import agent
from colabmagic.system import supervisor


@pytest.fixture(autouse=True)
def cloudflared_setting(ip) -> None:
    ip.cell(f"%config TunnelMagics.cloudflared_path = '{standin('cloudflared')}'")


def test_quick_tunnel_serves_the_page_and_a_restart_announces_the_new_name(ip, page: Page) -> None:
    c = ip.cell(f"%tunnel {page.port} --via cloudflared")
    t = c.value
    assert t.provider == "cloudflared"
    assert t.public_url.startswith("https://") and t.public_url.endswith(".trycloudflare.com")
    # the address is the one the metrics server reports, not a guess from the log
    service = supervisor.adopt(tunnels.service_name(t.name))
    reported = agent.get_json(f"http://127.0.0.1:{service.info['metrics_port']}/quicktunnel")
    assert t.public_url == f"https://{reported['hostname']}"
    assert page.marker in fetch_until(t.public_url, page.marker)

    old_pid = kill_agent(t.name)
    listing = ip.cell("%tunnel list")
    after = tunnels.get(t.name)
    assert after.pid != old_pid and after.restarts >= 1
    assert after.public_url != t.public_url
    assert "new public address" in listing.stdout and after.public_url in listing.stdout
    assert page.marker in fetch_until(after.public_url, page.marker)


def test_ssh_through_cloudflared_prints_the_proxycommand_and_logs_in(ip, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "laptop" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(key)], check=True)
    c = ip.cell(f"%tunnel ssh --via cloudflared --key-file {key}.pub")
    t = c.value
    assert "ProxyCommand cloudflared access ssh --hostname %h" in c.stdout
    assert f"HostName {t.public_host}" in c.stdout and t.public_host.endswith(".trycloudflare.com")

    # The user's laptop: only the printed lines, and `cloudflared` (the stand-in) on PATH.
    folder = tmp_path / "laptop"
    (folder / "known_hosts").write_text(t.known_hosts_line() + "\n")
    (folder / "config").write_text(t.ssh_config())
    env = dict(os.environ, PATH=f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["ssh", "-F", str(folder / "config"), "-o", f"UserKnownHostsFile={folder / 'known_hosts'}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
         "-o", "IdentityAgent=none", "-o", "ConnectTimeout=15", "-i", str(key), "colabmagic", "echo", "via-cloudflared"],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "via-cloudflared"
