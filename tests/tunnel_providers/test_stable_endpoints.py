"""Stable endpoints with --identity on a new runtime: a cloudflared named tunnel (token + fixed host name)
and an ngrok reserved TCP address, against the stand-ins."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from support.runtimes import NewRuntimes, files_below, printed, private_key_bodies
from support.standin_client import STANDINS, Page, _edge, fetch_until, standin

from colabmagic.services import tunnels
from colabmagic.system import supervisor

HOSTNAME = "ssh.colab-lab.example.org"


@pytest.fixture(autouse=True)
def standin_settings(ip) -> None:
    ip.cell(f"%config TunnelMagics.cloudflared_path = '{standin('cloudflared')}'")
    ip.cell(f"%config TunnelMagics.ngrok_path = '{standin('ngrok')}'")


@pytest.fixture
def provider_runtimes(safe_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NewRuntimes]:
    rt = NewRuntimes(monkeypatch, safe_home)
    try:
        yield rt
    finally:
        rt.close()


def _laptop_env() -> dict:
    return dict(os.environ, PATH=f"{STANDINS}{os.pathsep}{os.environ['PATH']}")


def test_named_tunnel_keeps_its_hostname_on_a_new_runtime(ip, provider_runtimes, client_key, ssh_login, tmp_path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    token = _edge.named_tunnel(HOSTNAME)  # what the user made once in the Zero Trust dashboard
    monkeypatch.setenv("CLOUDFLARE_TUNNEL_TOKEN", token)
    ident = tmp_path / "identity"
    first = ip.cell(f"%tunnel ssh --via cloudflared --hostname {HOSTNAME} --identity {ident} "
                    f"--key-file {client_key}.pub")
    t1 = first.value
    assert t1.public_host == HOSTNAME and t1.public_port == 443
    known1, block1 = printed(first.stdout)
    alias = block1.splitlines()[0].split()[1]
    assert f"HostName {HOSTNAME}\n" in block1
    assert "    ProxyCommand cloudflared access ssh --hostname %h\n" in block1
    assert "quick tunnel" not in first.stdout
    # the token is in a 0600 file, never on the agent's command line
    service = supervisor.adopt(tunnels.service_name("ssh"))
    argv = Path(f"/proc/{service.pid}/cmdline").read_bytes().decode().split("\0")
    assert token not in " ".join(argv) and "--token-file" in argv
    login = ssh_login(known1, block1, client_key, "echo named-1", host=alias, env=_laptop_env())
    assert login.returncode == 0 and login.stdout.strip() == "named-1", login.stderr

    provider_runtimes.next(ip)
    monkeypatch.delenv("CLOUDFLARE_TUNNEL_TOKEN")  # the identity keeps the token
    ip.cell(f"%config TunnelMagics.cloudflared_path = '{standin('cloudflared')}'")
    second = ip.cell(f"%tunnel ssh --identity {ident}")
    assert second.value.public_host == HOSTNAME
    known2, block2 = printed(second.stdout)
    assert (known2, block2) == (known1, block1)
    assert f"same host as before (identity from {ident}" in second.stdout
    again = ssh_login(known1, block1, client_key, "echo named-2", host=alias, env=_laptop_env())
    assert again.returncode == 0 and again.stdout.strip() == "named-2", again.stderr

    for path in ident.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (ident / "cloudflared_token").read_text().strip() == token
    home = provider_runtimes.home
    secrets_found = private_key_bodies(ident) + [token]
    for text in [first.output, second.output] + [p.read_text(errors="replace")
                                                 for p in files_below(home / "logs", home / "services")]:
        assert "PRIVATE KEY" not in text
        assert not any(s in text for s in secrets_found)


def test_quick_tunnel_says_its_address_will_change(ip, client_key) -> None:
    c = ip.cell(f"%tunnel ssh --via cloudflared --key-file {client_key}.pub")
    assert c.value.public_host.endswith(".trycloudflare.com")
    assert "quick tunnel: its address changes" in c.stdout


def test_a_token_that_is_not_one_is_refused_before_anything_starts(ip, monkeypatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_TUNNEL_TOKEN", "not-a-token")
    c = ip.cell(f"%tunnel 8080 --via cloudflared --hostname {HOSTNAME}", check=False)
    assert c.error is not None and "not a Cloudflare tunnel token" in str(c.error)
    assert "not-a-token" not in c.output
    assert tunnels.get("8080") is None


def test_standin_run_refuses_a_bad_token_and_retries_an_unknown_tunnel(tmp_path) -> None:
    """The stand-in's failure modes, as real cloudflared 2026.8.2 has them."""
    bad = subprocess.run([sys.executable, standin("cloudflared"), "tunnel", "run", "--token", "bm90LWpzb24="],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 255 and "Provided Tunnel token is not valid." in bad.stderr
    token = _edge.named_tunnel(HOSTNAME)
    other = _edge.named_tunnel(HOSTNAME)  # a real tunnel, but we present the first one's secret with its id
    import base64
    import json

    forged = json.loads(base64.b64decode(token))
    forged["t"] = json.loads(base64.b64decode(other))["t"]
    log = tmp_path / "cf.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, standin("cloudflared"), "tunnel", "--no-autoupdate", "run",
                                 "--token", base64.b64encode(json.dumps(forged).encode()).decode(),
                                 "--url", "ssh://127.0.0.1:1"], stdout=fh, stderr=fh)
    try:
        from colabmagic.system import probes

        assert probes.wait_for(lambda: "Retrying connection" in log.read_text(), 30)
        text = log.read_text()
        assert 'Register tunnel error from server side error="Unauthorized: Invalid tunnel secret"' in text
        assert "Registered tunnel connection" not in text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ngrok_reserved_tcp_address_is_the_same_on_a_new_runtime(ip, provider_runtimes, client_key, ssh_login, tmp_path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    address = "1.tcp.ngrok.io:21234"
    _edge.ngrok_reserve(address)  # reserved once in the ngrok dashboard
    monkeypatch.setenv("NGROK_AUTHTOKEN", "2ngrokStandInAuthtoken_0123456789abcdef")
    ident = tmp_path / "identity"
    first = ip.cell(f"%tunnel ssh --via ngrok --remote-addr {address} --identity {ident} --key-file {client_key}.pub")
    assert (first.value.public_host, first.value.public_port) == ("1.tcp.ngrok.io", 21234)
    known1, block1 = printed(first.stdout)
    provider_runtimes.next(ip)
    ip.cell(f"%config TunnelMagics.ngrok_path = '{standin('ngrok')}'")
    second = ip.cell(f"%tunnel ssh --identity {ident}")
    assert printed(second.stdout) == (known1, block1)
    alias = block1.splitlines()[0].split()[1]
    # the laptop reaches 1.tcp.ngrok.io:21234 where the stand-in DNS says it is (-o wins over the Host block)
    host, port = _edge.resolve(address)
    login = ssh_login(known1, block1, client_key, "echo ngrok-2", host=alias,
                      extra=["-o", f"HostName={host}", "-o", f"Port={port}"])
    assert login.returncode == 0 and login.stdout.strip() == "ngrok-2", login.stderr


def test_ngrok_address_not_reserved_is_explained(ip, client_key, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", "2ngrokStandInAuthtoken_0123456789abcdef")
    ip.cell("%config TunnelMagics.timeout = 15.0")
    c = ip.cell(f"%tunnel ssh --via ngrok --remote-addr 7.tcp.ngrok.io:10000 --key-file {client_key}.pub",
                check=False)
    assert c.error is not None and "not reserved" in str(c.error)


def test_frps_allocated_port_is_kept_and_asked_for_again(ip, provider_runtimes, frps, client_key, ssh_login, tmp_path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRP_TOKEN", frps.token)
    ip.cell(f"%config TunnelMagics.frpc_path = '{standin('frpc')}'")
    ident = tmp_path / "identity"
    first = ip.cell(f"%tunnel ssh --via frp --server {frps.server} --identity {ident} --key-file {client_key}.pub")
    port = first.value.public_port
    assert port  # frps chose it (no --remote-port)
    known1, block1 = printed(first.stdout)
    provider_runtimes.next(ip)
    ip.cell(f"%config TunnelMagics.frpc_path = '{standin('frpc')}'")
    ip.cell(f"%config TunnelMagics.identity = '{ident}'")  # the setting instead of --identity
    second = ip.cell("%tunnel ssh")
    assert second.value.public_port == port
    assert printed(second.stdout) == (known1, block1)
    alias = block1.splitlines()[0].split()[1]
    login = ssh_login(known1, block1, client_key, "echo frp-2", host=alias)
    assert login.returncode == 0 and login.stdout.strip() == "frp-2", login.stderr


def test_named_tunnel_for_a_web_port(ip, page: Page, monkeypatch: pytest.MonkeyPatch) -> None:
    hostname = "notebook.colab-lab.example.org"
    monkeypatch.setenv("CLOUDFLARE_TUNNEL_TOKEN", _edge.named_tunnel(hostname))
    c = ip.cell(f"%tunnel {page.port} --via cloudflared --hostname {hostname}")
    assert c.value.public_url == f"https://{hostname}"
    assert "quick tunnel" not in c.stdout
    assert page.marker in fetch_until(c.value.public_url, page.marker)
