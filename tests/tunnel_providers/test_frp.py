"""frp through %tunnel, against the frpc and frps stand-ins: tcp and http, restart, the token kept secret."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from support.standin_client import (
    Frps,
    Page,
    assert_secret_hidden,
    fetch_until,
    kill_agent,
    standin,
    tcp_fetch_until,
)

from colabmagic.services import tunnels
from colabmagic.system import probes, supervisor


@pytest.fixture
def frp_ready(ip, frps: Frps, monkeypatch: pytest.MonkeyPatch) -> Frps:
    monkeypatch.setenv("FRP_TOKEN", frps.token)
    ip.cell(f"%config TunnelMagics.frpc_path = '{standin('frpc')}'")
    return frps


def test_tcp_page_through_frps_and_back_after_sigkill(ip, page: Page, frp_ready: Frps, safe_home: Path) -> None:
    remote = probes.free_port()
    c = ip.cell(f"%tunnel {page.port} --via frp --server {frp_ready.server} --proto tcp --remote-port {remote}")
    t = c.value
    assert (t.provider, t.public_host, t.public_port) == ("frp", "127.0.0.1", remote)
    assert f"127.0.0.1:{remote}" in c.stdout
    assert page.marker in tcp_fetch_until("127.0.0.1", remote, page.marker)

    old = kill_agent(t.name)
    listing = ip.cell("%tunnel list")
    after = tunnels.get(t.name)
    assert after is not None and after.pid != old and after.restarts >= 1
    assert (after.public_host, after.public_port) == ("127.0.0.1", remote)
    assert page.marker in tcp_fetch_until("127.0.0.1", remote, page.marker)

    config = Path(supervisor.adopt(tunnels.service_name(t.name)).info["config_file"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert "transport.tls.enable = true" in text and "loginFailExit = false" in text
    assert_secret_hidden(frp_ready.token, safe_home, [c.output, listing.output])


def test_http_page_by_custom_domain(ip, page: Page, frp_ready: Frps) -> None:
    domain = "notebook.example.test"
    c = ip.cell(f"%tunnel {page.port} --via frp --server {frp_ready.server} --domain {domain}")
    t = c.value
    assert t.public_url == f"http://{domain}:{frp_ready.vhost_port}"
    dns = {domain: "127.0.0.1"}
    assert page.marker in fetch_until(t.public_url, page.marker, dns=dns)
    kill_agent(t.name)
    assert page.marker in fetch_until(tunnels.get(t.name).public_url, page.marker, dns=dns)


def test_wrong_token_is_a_clear_error_without_the_token(ip, page: Page, frps: Frps,
                                                       monkeypatch: pytest.MonkeyPatch, safe_home: Path) -> None:
    wrong = "wrong-token-" + frps.token[::-1]
    monkeypatch.setenv("FRP_TOKEN", wrong)
    ip.cell(f"%config TunnelMagics.frpc_path = '{standin('frpc')}'")
    ip.cell("%config TunnelMagics.timeout = 6")
    try:
        c = ip.cell(f"%tunnel {page.port} --via frp --server {frps.server} --proto tcp", check=False)
    finally:
        ip.cell("%config TunnelMagics.timeout = 60.0")  # %config outlives this test's shell
    assert c.error is not None
    message = str(c.error)
    assert "refused the login" in message and "FRP_TOKEN" in message
    assert not tunnels.services()
    assert_secret_hidden(wrong, safe_home, [c.output, message])


@pytest.mark.parametrize("extra", [
    "--server '-oProxyCommand=touch /tmp/x' --proto tcp",
    "--server 127.0.0.1:70000 --proto tcp",
    "--server 127.0.0.1:7000 --domain 'bad domain;x'",
    "--server 127.0.0.1:7000",  # http without --domain
    "--proto tcp",  # no server
])
def test_bad_frp_options_start_and_write_nothing(ip, page: Page, frp_ready: Frps, safe_home: Path,
                                                 extra: str) -> None:
    c = ip.cell(f"%tunnel {page.port} --via frp {extra}", check=False)
    assert c.error is not None
    assert len(str(c.error).splitlines()) == 1
    assert not tunnels.services()
    assert not list((safe_home / "tunnels").glob("*")) if (safe_home / "tunnels").exists() else True


def test_ssh_through_frp_logs_in_with_the_printed_lines(ip, frp_ready: Frps, tmp_path: Path) -> None:
    key = tmp_path / "laptop" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(key)], check=True)
    remote = probes.free_port()
    c = ip.cell(f"%tunnel ssh --via frp --server {frp_ready.server} --remote-port {remote} --key-file {key}.pub")
    t = c.value
    assert (t.public_host, t.public_port) == ("127.0.0.1", remote)
    folder = key.parent
    (folder / "known_hosts").write_text(t.known_hosts_line() + "\n")
    (folder / "config").write_text(t.ssh_config())
    result = subprocess.run(
        ["ssh", "-F", str(folder / "config"), "-o", f"UserKnownHostsFile={folder / 'known_hosts'}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
         "-o", "IdentityAgent=none", "-o", "ConnectTimeout=15", "-i", str(key), "colabmagic", "echo", "via-frp"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "via-frp"


def test_running_the_same_tunnel_again_reuses_the_agent_and_config(ip, page: Page, frp_ready: Frps) -> None:
    line = f"%tunnel {page.port} --via frp --server {frp_ready.server} --proto tcp"
    first = ip.cell(line).value
    service = supervisor.adopt(tunnels.service_name(first.name))
    config = Path(service.info["config_file"])
    before = (config.read_bytes(), config.stat().st_mtime_ns)
    again = ip.cell(line)
    assert "reused" in again.stdout
    assert again.value.pid == first.pid and again.value.public_port == first.public_port
    assert (config.read_bytes(), config.stat().st_mtime_ns) == before


def test_frps_restart_frpc_logs_in_again_by_itself(ip, page: Page, frp_ready, safe_home: Path) -> None:
    remote = probes.free_port()
    t = ip.cell(f"%tunnel {page.port} --via frp --server {frp_ready.server} --proto tcp --remote-port {remote}").value
    assert page.marker in tcp_fetch_until("127.0.0.1", remote, page.marker)
    frp_ready.stop()
    assert probes.wait_for(lambda: tunnels.get(t.name).status != "running", 30)
    frp_ready.restart()
    assert tunnels.wait_public(t.name, timeout=30)
    assert page.marker in tcp_fetch_until("127.0.0.1", remote, page.marker)
    after = tunnels.get(t.name)
    assert after.status == "running" and after.pid == t.pid  # frpc retried; nothing had to be restarted
