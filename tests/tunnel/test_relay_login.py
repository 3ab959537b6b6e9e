"""How the VM logs in to the relay: a generated key it asks you to authorize, RELAY_SSH_KEY, known_hosts files."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from colabmagic.errors import ColabMagicError
from colabmagic.system import probes, supervisor


def _page(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def test_generated_login_key_is_shown_and_works_once_authorized(ip, relay, tmp_path, monkeypatch):
    monkeypatch.delenv("RELAY_SSH_KEY", raising=False)
    site = probes.free_port()
    remote = probes.free_port()
    line = f"%tunnel {site} --via ssh --relay {relay.relay} --relay-host-key '{relay.host_key}' --remote-port {remote}"
    c = ip.cell(line, check=False)
    assert isinstance(c.error, ColabMagicError) and "refused our login key" in c.error.message
    key = re.search(r"(ssh-ed25519 \S+ colabmagic-relay)", c.error.message).group(1)
    assert supervisor.adopt(f"tunnel-{site}") is None

    with open(relay.folder / "authorized_keys", "a") as fh:  # the user authorizes it on their server
        fh.write(key + "\n")
    c = ip.cell(line)
    assert key in c.stdout
    assert f"nothing listens on 127.0.0.1:{site} yet" in c.stdout
    assert ip.user_ns["_colabmagic"].tunnels[str(site)].public_port == remote


def test_relay_key_from_secret_and_known_hosts_file(ip, relay, tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_SSH_KEY", relay.client_key.read_text())
    known = tmp_path / "relay_known_hosts"
    known.write_text(relay.known_hosts_line() + "\n")
    web = tmp_path / "www"
    web.mkdir()
    (web / "index.html").write_text("served")
    port = probes.free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=web,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert probes.wait_for(lambda: probes.port_open(port), 30)
        remote = probes.free_port()
        c = ip.cell(f"t = %tunnel {port} --via ssh --relay {relay.relay} --relay-known-hosts {known} "
                    f"--remote-port {remote}")
        t = ip.user_ns["t"]
        assert _page(t.public_url) == b"served"
        private = relay.client_key.read_text()
        assert private not in c.output
        for log in Path(supervisor.log_path(f"tunnel-{port}")).parent.glob("*"):
            assert "PRIVATE KEY" not in log.read_text(errors="replace")
    finally:
        server.terminate()
        server.wait(10)


def test_public_key_from_secret(ip, relay, relay_args, client_key, ssh_login, monkeypatch):
    monkeypatch.setenv("SSH_PUBLIC_KEY", Path(f"{client_key}.pub").read_text())
    ip.cell(f"t = %tunnel ssh {relay_args(relay)}")
    t = ip.user_ns["t"]
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, "echo via-secret")
    assert r.returncode == 0 and r.stdout.strip() == "via-secret", r.stderr
