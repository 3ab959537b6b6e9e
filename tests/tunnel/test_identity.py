"""%tunnel ssh --identity: a brand-new runtime gives the same host key and address (issue 16).

The relay ("your server") runs in a home of its own, so wiping a runtime's
home and processes leaves it up, as a real server outlives a Colab runtime.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from support.homes import safe_home_dir, stop_services_of
from support.runtimes import NewRuntimes, files_below, printed, private_key_bodies

from colabmagic.demo import relay as demo_relay
from colabmagic.services import identity, sshd
from colabmagic.system import probes


@pytest.fixture
def own_relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[demo_relay.Relay]:
    """A relay supervised from its own home (not the runtime's), like a server that outlives runtimes."""
    runtime_home = os.environ["COLABMAGIC_HOME"]
    relay_home = safe_home_dir()
    monkeypatch.setenv("COLABMAGIC_HOME", str(relay_home))
    r = demo_relay.start(folder=tmp_path / "relay", name="identity-relay")
    monkeypatch.setenv("COLABMAGIC_HOME", runtime_home)
    try:
        yield r
    finally:
        stop_services_of(relay_home)


@pytest.fixture
def runtimes(safe_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NewRuntimes]:
    rt = NewRuntimes(monkeypatch, safe_home)
    try:
        yield rt
    finally:
        rt.close()


def test_new_runtime_same_known_hosts_line_and_host_block(ip, runtimes, own_relay, client_key, ssh_login, tmp_path):
    ident = tmp_path / "drive" / "colab-identity"
    ident.parent.mkdir()
    pub = Path(f"{client_key}.pub").read_text().strip()
    r = own_relay
    remote_port = probes.free_port()
    first = ip.cell(f"%tunnel ssh --identity {ident} --via ssh --relay {r.relay} --relay-host-key '{r.host_key}' "
                    f"--relay-key-file {r.client_key} --remote-port {remote_port} --key '{pub}' --folder /srv/work")
    known1, block1 = printed(first.stdout)
    alias = block1.splitlines()[0].split()[1]
    assert alias.startswith("colabmagic-") and f"HostName 127.0.0.1\n    Port {remote_port}\n" in block1
    assert f"vscode://vscode-remote/ssh-remote+{alias}/srv/work" in first.stdout
    assert "<a href='vscode://vscode-remote/ssh-remote+" in first.value._repr_html_()
    assert f"new identity in {ident}" in first.stdout
    login = ssh_login(known1, block1, client_key, "echo first-runtime", host=alias)
    assert login.returncode == 0 and login.stdout.strip() == "first-runtime", login.stderr
    old_home = runtimes.home
    old_sshd_pid = first.value.pid

    # A brand-new runtime: the old home (with its host key) and its processes are gone; only the
    # identity folder is left. The user types only --identity.
    runtimes.next(ip)
    assert not old_home.exists() and not (sshd.state_dir() / "ssh_host_ed25519_key").exists()
    second = ip.cell(f"%tunnel ssh --identity {ident}")
    known2, block2 = printed(second.stdout)
    assert known2 == known1
    assert block2 == block1
    assert f"same host as before (identity from {ident}, first used " in second.stdout
    assert second.value.pid != old_sshd_pid

    # The laptop's files from the first runtime, unchanged, log in with StrictHostKeyChecking=yes.
    again = ssh_login(known1, block1, client_key, "echo second-runtime", host=alias)
    assert again.returncode == 0 and again.stdout.strip() == "second-runtime", again.stderr
    # the same line again on this runtime reuses what runs
    third = ip.cell(f"%tunnel ssh --identity {ident}")
    assert "sshd was already running" in third.stdout and third.value.pid == second.value.pid
    assert printed(third.stdout) == (known1, block1)

    # The identity's files are the user's, 0600, and no private key shows in any output or log.
    assert stat.S_IMODE(ident.stat().st_mode) == 0o700
    names = sorted(p.name for p in ident.iterdir())
    assert {"ssh_host_ed25519_key", "authorized_keys", "relay_key", "settings.json"} <= set(names)
    for path in ident.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    bodies = private_key_bodies(ident)
    assert bodies
    home = runtimes.home
    texts = [first.output, second.output, first.value._repr_html_(), repr(second.value)]
    texts += [p.read_text(errors="replace") for p in files_below(home / "logs", home / "services")]
    for text in texts:
        assert "PRIVATE KEY" not in text
        assert not any(body in text for body in bodies)


def test_host_key_secret_mismatch_names_both_fingerprints_and_starts_nothing(ip, safe_home, tmp_path, monkeypatch):
    ident = tmp_path / "ident"
    first = identity.prepare(str(ident), "ssh", {}, (), default_via="ssh")  # makes the identity's host key
    assert first.identity == ident
    kept = identity.public_of((ident / "ssh_host_ed25519_key").read_text(), "test")
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    monkeypatch.setenv(identity.HOST_KEY_SECRET, other.read_text())
    secret_fp = identity.public_of(other.read_text(), "test").fingerprint
    before = sorted(p.name for p in ident.iterdir())

    c = ip.cell(f"%tunnel ssh --identity {ident} --via ssh --relay root@127.0.0.1:1 "
                "--relay-host-key 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummyDummyDummyDummyDummyDummyDummyDummy'",
                check=False)
    assert c.error is not None
    message = str(c.error)
    assert "mismatch" in message and kept.fingerprint in message and secret_fp in message
    assert "PRIVATE KEY" not in c.output
    assert sorted(p.name for p in ident.iterdir()) == before
    assert sshd.current() is None


def test_host_key_secret_alone_is_the_host_key(safe_home, tmp_path, monkeypatch):
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    monkeypatch.setenv(identity.HOST_KEY_SECRET, key.read_text())
    plan = identity.prepare(None, "ssh", {}, ())
    assert sshd.host_key().fingerprint == identity.public_of(key.read_text(), "test").fingerprint
    assert plan.report and "PRIVATE KEY" not in "".join(plan.report)


def test_bad_input_writes_no_identity_and_no_host_key(ip, safe_home, tmp_path, client_key):
    ident = tmp_path / "ident"
    c = ip.cell(f"%tunnel ssh --identity {ident} --via ssh --relay 'root@bad host' --key-file {client_key}.pub",
                check=False)
    assert c.error is not None and "--relay" in str(c.error)
    assert not ident.exists()
    assert not (sshd.state_dir() / "ssh_host_ed25519_key").exists()
