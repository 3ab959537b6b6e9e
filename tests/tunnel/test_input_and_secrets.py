"""Bad input is refused before anything starts; passwords are opt-in and stay out of sight."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pexpect
import pytest

from colabmagic.errors import ColabMagicError
from colabmagic.services import sshd
from colabmagic.system import probes, procfs, supervisor


def _files(home: Path) -> list:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


@pytest.fixture
def pub(client_key: Path) -> str:
    return Path(f"{client_key}.pub").read_text().strip()


BAD_LINES = [
    "%tunnel 0 --via ssh",
    "%tunnel 65536 --via ssh",
    "%tunnel abc --via ssh",
    "%tunnel 8000 --via nosuch",
    "%tunnel 8000 --via ssh --relay=-oProxyCommand=touch\\ /tmp/cm-pwned",
    "%tunnel 8000 --via ssh --relay -oProxyCommand=touch",
    "%tunnel 8000 --via ssh --relay 'root@127.0.0.1;touch /tmp/cm-pwned' --relay-host-key '{hk}'",
    "%tunnel 8000 --via ssh --relay 'root@$(touch /tmp/cm-pwned)' --relay-host-key '{hk}'",
    "%tunnel 8000 --via ssh --relay root@127.0.0.1:70000 --relay-host-key '{hk}'",
    "%tunnel 8000 --via ssh --relay {relay} --relay-host-key '{hk}' --remote-port 0",
    "%tunnel 8000 --via ssh --relay {relay} --relay-host-key '{hk}' --remote-port=-22",
    "%tunnel 8000 --via ssh --relay {relay} --relay-host-key '{hk}' --relay-key-file=-i",
    "%tunnel 8000 --via ssh --relay {relay}",
    "%tunnel 8000 --via ssh --relay {relay} --relay-host-key 'ssh-ed25519 not*base64'",
    "%tunnel 8000 --via ssh --relay {relay} --relay-host-key '{hk}' --name=-x",
    "%tunnel ssh --via ssh --relay {relay} --relay-host-key '{hk}' --key 'ssh-ed25519 AAAA'",
    "%tunnel ssh --via ssh --relay {relay} --relay-host-key '{hk}' --key-file=-x",
    "%tunnel ssh --via ssh --relay {relay} --relay-host-key '{hk}' --key '{pub}' --port 0",
    "%tunnel ssh --via ssh --relay {relay} --relay-host-key '{hk}' --key '{pub}' --port abc",
    "%tunnel ssh --via ssh --relay {relay} --relay-host-key '{hk}' --key '{pub}' --user 'bad;user'",
    "%tunnel ssh --via ssh --relay {relay} --relay-host-key '{hk}' --key '{pub}' --github someone",
    "%tunnel ssh --via ssh --relay {relay} --relay-host-key '{hk}' --key '{pub}' --env 'A;B'",
    "%tunnel ssh --via ssh --relay {relay} --key '{pub}'",
    "%tunnel ssh --via nosuch --key '{pub}'",
]


@pytest.mark.parametrize("template", BAD_LINES)
def test_bad_input_one_clear_line_nothing_started(ip, cm_home, relay, pub, template):
    before = _files(cm_home)
    running = {s.name for s in supervisor.running()}
    line = template.format(relay=relay.relay, hk=relay.host_key, pub=pub)
    c = ip.cell(line, check=False)
    assert c.error is not None
    rendered = c.error._render_traceback_() if hasattr(c.error, "_render_traceback_") else [str(c.error)]
    assert len(rendered) == 1 and len(rendered[0]) < 400 and "Traceback" not in c.output
    assert {s.name for s in supervisor.running()} == running
    assert _files(cm_home) == before
    assert not Path("/tmp/cm-pwned").exists()


def test_key_with_newline_and_second_key_refused(ip, cm_home, relay, pub):
    before = _files(cm_home)
    two = pub + "\n" + pub.replace("laptop", "other")
    with pytest.raises(ColabMagicError, match="one key per value"):
        ip.run_line_magic("tunnel", f"ssh --via ssh --relay {relay.relay} --relay-host-key '{relay.host_key}' "
                                    f"--key '{two}'")
    assert _files(cm_home) == before and [s.name for s in supervisor.running()] == ["demo-relay"]


def test_wrong_relay_host_key_refused(ip, relay, relay_args, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    args = relay_args(relay).replace(relay.host_key, wrong)
    c = ip.cell(f"%tunnel 8000 {args}", check=False)
    assert isinstance(c.error, ColabMagicError)
    assert "pinned host key" in c.error.message and "StrictHostKeyChecking" in c.error.message
    assert supervisor.adopt("tunnel-8000") is None


def test_default_sshd_refuses_passwords_and_listens_on_loopback(ip, relay, relay_args, pub, tmp_path):
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    result = subprocess.run([sshd.sshd_binary(), "-T", "-f", str(sshd.config_path())],
                            capture_output=True, text=True, check=True)
    settings = set(result.stdout.splitlines())
    port = ip.user_ns["_colabmagic"].sshd.port
    for expected in ("passwordauthentication no", "kbdinteractiveauthentication no",
                     "permitrootlogin without-password", "strictmodes yes", "usepam no",
                     f"listenaddress 127.0.0.1:{port}", "permitemptypasswords no"):
        assert expected in settings, expected
    ours = set()
    for name in ("sshd", "tunnel-ssh"):  # the daemons, and anything they started (by their start token)
        service = supervisor.adopt(name)
        assert service is not None and service.token
        ours |= set(procfs.processes_with_env(supervisor.TOKEN_ENV, service.token))
        ours.add(service.pid)  # sshd's title (setproctitle) overwrites what /proc shows of its environment
    owners = procfs.socket_owners()  # listeners() gives socket inodes: who holds each is read from /proc/PID/fd
    mine = [(address, lport) for address, lport, inode in procfs.listeners() if owners.get(inode) in ours]
    assert ("127.0.0.1", port) in mine  # sshd's own listener is found, so the check below has something to check
    for address, lport in mine:
        assert address in ("127.0.0.1", "::1") and lport == port, f"{address}:{lport}"
    served = [line for line in settings if line.startswith("authorizedkeysfile ")][0].split()[1]
    assert served.startswith("/run/colabmagic/") and Path(served).read_text().strip() == pub  # home is below /tmp
    oct_mode = {p.name: oct(p.stat().st_mode & 0o777) for p in sshd.state_dir().iterdir()}
    assert oct_mode["sshd_config"] == "0o600" and oct_mode["ssh_host_ed25519_key"] == "0o600"
    # Stopped however it is stopped (here with everything else), sshd takes its copy under /run along.
    ip.cell("%colabmagic stop --all")
    assert not Path(served).parent.exists()


@pytest.fixture
def login_user(tmp_path):
    """A fresh, locked test account (as useradd makes them); reused if a previous run left it."""
    name = "cmtestssh"
    tmp_path.chmod(0o755)
    made = subprocess.run(["useradd", "-M", "-d", str(tmp_path), "-s", "/bin/sh", name], capture_output=True)
    if made.returncode != 0:
        subprocess.run(["usermod", "-d", str(tmp_path), "-s", "/bin/sh", "-p", "!", name], check=True)
    yield name
    subprocess.run(["userdel", name], capture_output=True)


def test_key_login_as_another_user(ip, cm_home, relay, relay_args, login_user, client_key, ssh_login, pub):
    line = f"%tunnel ssh {relay_args(relay)} --key '{pub}' --user {login_user}"
    before = _files(cm_home)
    c = ip.cell(line, check=False)
    assert isinstance(c.error, ColabMagicError) and "is locked" in c.error.message
    assert _files(cm_home) == before
    subprocess.run(["usermod", "-p", "*", login_user], check=True)  # what the message says to do
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}' --user {login_user}")
    t = ip.user_ns["t"]
    assert f"User {login_user}" in t.ssh_config()
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, "id -un")
    assert r.returncode == 0 and r.stdout.strip() == login_user, r.stderr


def test_password_opt_in_works_and_stays_secret(ip, cm_home, relay, relay_args, login_user, tmp_path):
    c = ip.cell(f"t = %tunnel ssh {relay_args(relay)} --password --user {login_user}")
    t = ip.user_ns["t"]
    found = re.search(r"Password for \S+ \(shown this once.*\): (\S+)", c.stdout)
    assert found, c.stdout
    password = found.group(1)
    assert len(password) >= 20 and c.stdout.count(password) == 1

    folder = tmp_path / "client"
    folder.mkdir()
    (folder / "known_hosts").write_text(t.known_hosts_line() + "\n")
    (folder / "config").write_text(t.ssh_config())
    child = pexpect.spawn("ssh", ["-F", str(folder / "config"), "-o", f"UserKnownHostsFile={folder / 'known_hosts'}",
                                  "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
                                  "colabmagic", "echo logged-in-as-$(id -un)"], timeout=30, encoding="utf-8")
    child.expect("password:")
    child.sendline(password)
    child.expect(pexpect.EOF)
    assert f"logged-in-as-{login_user}" in child.before

    listing = ip.cell("%tunnel list")
    assert password not in listing.output and password not in repr(listing.value)
    assert password not in repr(ip.user_ns["_colabmagic"].sshd) and password not in repr(t)
    for log in (cm_home / "logs").glob("*"):
        assert password not in log.read_text(errors="replace"), log
    for pid in procfs.pids():
        assert password not in " ".join(procfs.cmdline(pid))
    secret = cm_home / "secrets" / "SSH_PASSWORD"
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    assert probes.port_open(t.public_port)
