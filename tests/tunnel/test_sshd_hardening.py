"""colabmagic's sshd settings against abuse through the tunnel, and the --password account state.

Every tunnelled client arrives from 127.0.0.1, the owner included, so the
settings must bound a stranger (MaxAuthTries, LoginGraceTime, MaxStartups)
without letting a stranger's failures lock the owner out (OpenSSH 9.8's
PerSourcePenalties). A user other than root forwards no ports unless asked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from colabmagic.services import sshd

BANNERS = [
    ("OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19 27 Jan 2026", (9, 2)),
    ("OpenSSH_10.0p2 Debian-7, OpenSSL 3.5.1 1 Jul 2025", (10, 0)),
    ("OpenSSH_9.8p1, LibreSSL 3.3.6", (9, 8)),
    ("unknown option -- V\nOpenSSH_8.4p1 Debian-5+deb11u3, OpenSSL 1.1.1w  11 Sep 2023\nusage: sshd [-46DdeiqTt]",
     (8, 4)),
    ("OpenSSH_9.10p1", (9, 10)),
    ("sshd: command not found", None),
]


@pytest.mark.parametrize("text,expected", BANNERS)
def test_version_banner_parsing(text, expected) -> None:
    assert sshd.parse_version(text) == expected


def _render(version, user: str = "root", forwarding: bool = True) -> str:
    key = sshd.HostKey(Path("/k"), "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIA==", "SHA256:x")
    return sshd.render_config(2222, user, key, False, {}, forwarding, version)


def test_per_source_penalties_off_exactly_from_openssh_9_8() -> None:
    for version, emitted in (((9, 8), True), ((10, 0), True), ((9, 7), False), ((8, 4), False), (None, False)):
        assert ("PerSourcePenalties no" in _render(version).splitlines()) is emitted, version
    text = _render((9, 2), user="someone", forwarding=False)
    assert "AllowTcpForwarding no" in text and "AllowStreamLocalForwarding no" in text
    for line in ("MaxAuthTries 3", "LoginGraceTime 30", "MaxStartups 60:30:100"):
        assert line in text.splitlines()


def _settings(config: Path) -> set:
    result = subprocess.run([sshd.sshd_binary() or "sshd", "-T", "-f", str(config)], capture_output=True, text=True,
                            check=True)
    return set(result.stdout.splitlines())


def test_real_sshd_takes_the_settings_and_the_owner_logs_in_after_20_failures(
        ip, relay, relay_args, client_key, ssh_login, tmp_path) -> None:
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    settings = _settings(sshd.config_path())
    for expected in ("maxauthtries 3", "logingracetime 30", "maxstartups 60:30:100", "allowtcpforwarding yes"):
        assert expected in settings, expected
    version = sshd.sshd_version(str(sshd.sshd_binary()))
    assert version is not None
    penalties = [line for line in settings if line.startswith("persourcepenalties")]
    if version >= (9, 8):
        assert penalties == ["persourcepenalties no"], penalties
    else:
        assert penalties == []  # this sshd has no such setting (and would refuse the keyword)

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    for attempt in range(20):  # each through the tunnel: sshd sees 127.0.0.1, as for the owner
        r = ssh_login(t.known_hosts_line(), t.ssh_config(), stranger, "true")
        assert r.returncode == 255 and "Permission denied" in r.stderr, (attempt, r.stderr)
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, "echo owner-in")
    assert r.returncode == 0 and r.stdout.strip() == "owner-in", r.stderr


def _shadow(user: str) -> str:
    for line in Path("/etc/shadow").read_text().splitlines():
        if line.split(":")[0] == user:
            return line.split(":")[1]
    raise AssertionError(f"{user} is not in /etc/shadow")


def _account(name: str, home: Path) -> Iterator[str]:
    home.chmod(0o755)
    made = subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], capture_output=True)
    if made.returncode != 0:
        subprocess.run(["usermod", "-d", str(home), "-s", "/bin/sh", "-p", "!", name], check=True)
    yield name
    subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def forward_user(tmp_path: Path) -> Iterator[str]:
    yield from _account("cmtestfwd", tmp_path)


@pytest.fixture
def password_user(tmp_path: Path) -> Iterator[str]:
    yield from _account("cmtestpw", tmp_path)


def test_another_user_forwards_nothing_unless_asked(ip, relay, relay_args, client_key, ssh_login, forward_user) -> None:
    subprocess.run(["usermod", "-p", "*", forward_user], check=True)
    pub = Path(f"{client_key}.pub").read_text().strip()
    base = f"%tunnel ssh {relay_args(relay)} --key '{pub}' --user {forward_user}"
    ip.cell(f"t = {base}")
    t = ip.user_ns["t"]
    port = ip.user_ns["_colabmagic"].sshd.port
    # ssh -W: stdio forwarding to a loopback port (here sshd's own), refused when forwarding is off.
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, "", extra=["-W", f"127.0.0.1:{port}"])
    assert r.returncode != 0 and "administratively prohibited" in r.stderr, r.stderr
    assert "allowtcpforwarding no" in _settings(sshd.config_path())

    ip.cell(f"t = {base} --allow-forwarding")
    t = ip.user_ns["t"]
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, "", extra=["-W", f"127.0.0.1:{port}"])
    assert r.stdout.startswith("SSH-2.0-"), r.stderr


def test_password_is_new_each_start_and_the_account_gets_its_old_state_back(
        ip, relay, relay_args, password_user) -> None:
    before = _shadow(password_user)
    assert before.startswith("!")  # useradd leaves new accounts locked
    shown = []
    for _ in range(2):
        c = ip.cell(f"%tunnel ssh {relay_args(relay)} --password --user {password_user}")
        found = re.search(r"Password for \S+ \(shown this once.*\): (\S+)", c.stdout)
        assert found, c.stdout
        shown.append(found.group(1))
        assert _shadow(password_user).startswith("$")  # a real password is set while sshd runs
    assert shown[0] != shown[1]
    ip.cell("%colabmagic stop --all")  # stopped however it is stopped: here not through %tunnel
    assert _shadow(password_user) == before
    assert not (sshd.state_dir() / "password_restore.json").exists()
    assert not (sshd.state_dir().parent / "secrets" / sshd.PASSWORD_SECRET).exists()  # the old password is gone


def test_ssh_sessions_get_the_gpu_and_colab_variables_but_no_credential_unless_named() -> None:
    kernel = {"PATH": "/usr/bin:/bin", "COLAB_GPU": "1", "CUDA_VISIBLE_DEVICES": "0",
              "COLAB_JUPYTER_TOKEN": "colab-internal", "CUDA_AUTH_KEY": "k", "FRP_TOKEN": "f"}
    env = sshd.session_environment(source=kernel)
    assert {"PATH", "COLAB_GPU", "CUDA_VISIBLE_DEVICES"} <= set(env)
    assert not {"COLAB_JUPYTER_TOKEN", "CUDA_AUTH_KEY", "FRP_TOKEN"} & set(env)
    named = sshd.session_environment(["COLAB_JUPYTER_TOKEN"], source=kernel)  # --env NAME: the user's choice
    assert named["COLAB_JUPYTER_TOKEN"] == "colab-internal" and "FRP_TOKEN" not in named
