"""%tunnel ssh through a real OpenSSH relay on loopback: login, environment, recovery."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from colabmagic.demo import relay as demo_relay
from colabmagic.services import sshd, tunnels
from colabmagic.system import probes, supervisor


def test_login_through_relay_sees_kernel_environment(ip, relay, relay_args, client_key, ssh_login, monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/kernel-libs/lib64")
    pub = Path(f"{client_key}.pub").read_text().strip()
    c = ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    assert t.provider == "ssh" and t.public_host == "127.0.0.1"
    assert t.known_hosts_line() in c.stdout and t.ssh_config() .split("\n")[0] in c.stdout
    assert "-L 5901:localhost:5901" in c.stdout and "VS Code" in c.stdout
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, 'echo "LD=$LD_LIBRARY_PATH"; id -un')
    assert r.returncode == 0, r.stderr
    assert "LD=/opt/kernel-libs/lib64" in r.stdout
    assert r.stdout.strip().endswith("root")

