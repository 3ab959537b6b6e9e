"""%tunnel ssh through a real OpenSSH relay on loopback: login, environment, recovery."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pexpect

from colabmagic.demo import relay as demo_relay
from colabmagic.services import sshd, tunnels
from colabmagic.system import probes, procfs, supervisor


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


def test_printed_jump_form_works_when_relay_keeps_gatewayports_no(ip, relay, relay_args, client_key, tmp_path):
    pub = Path(f"{client_key}.pub").read_text().strip()
    c = ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    jump = [line.strip() for line in c.stdout.splitlines() if line.strip().startswith("ssh -J ")][0]
    known = tmp_path / "known_hosts"
    known.write_text(relay.known_hosts_line() + "\n" + t.known_hosts_line() + "\n")
    config = tmp_path / "config"  # -F reaches the jump connection too; -o options do not
    config.write_text(f"Host *\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
                      f"  IdentitiesOnly yes\n  IdentityFile {client_key}\n  IdentityFile {relay.client_key}\n")
    words = jump.split()
    argv = words[:1] + ["-F", str(config)] + words[1:] + ["echo", "jumped"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout.strip() == "jumped", r.stderr



def _login_ok(ssh_login, t, key) -> bool:
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), key, "echo alive", timeout=10)
    return r.returncode == 0 and r.stdout.strip() == "alive"


def test_tunnel_comes_back_after_sigkill_and_relay_restart(ip, relay, relay_args, client_key, ssh_login):
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    assert _login_ok(ssh_login, t, client_key)

    old = t.pid
    os.kill(old, signal.SIGKILL)
    assert probes.wait_for(lambda: _login_ok(ssh_login, t, client_key), timeout=20, interval=0.5)
    listing = ip.cell("%tunnel list").value
    row = [r for r in listing.rows if r[0] == "ssh"][0]
    assert row[1] == "ssh" and int(row[5]) >= 1 and int(row[6]) != old  # restarts, new pid

    demo_relay.stop()
    assert not _login_ok(ssh_login, t, client_key)
    demo_relay.start(folder=relay.folder)  # same port and host key, like a rebooted server
    assert probes.wait_for(lambda: _login_ok(ssh_login, t, client_key), timeout=60, interval=0.5)


def test_ssh_three_times_reuses_one_sshd(safe_home, ip, relay, relay_args, client_key):
    pub = Path(f"{client_key}.pub").read_text().strip()
    line = f"%tunnel ssh {relay_args(relay)} --key '{pub}'"
    outputs, configs, fingerprints = [], [], []
    for _ in range(3):
        c = ip.cell(f"t = {line}")
        outputs.append(c.stdout)
        configs.append(Path(sshd.config_path()).read_bytes())
        fingerprints.append(ip.user_ns["_colabmagic"].sshd.fingerprint)
    assert len(set(configs)) == 1 and len(set(fingerprints)) == 1
    sshd_services = [s for s in supervisor.running() if s.name == "sshd"]
    assert len(sshd_services) == 1
    listeners = [p for p in _pids() if str(sshd.config_path()) in _cmdline(p) and "listener" in _cmdline(p)]
    assert listeners == [sshd_services[0].pid]
    assert "reused" in outputs[1] and "reused" in outputs[2]
    assert fingerprints[0] in outputs[2]
    assert set(ip.user_ns["_colabmagic"].tunnels) == {"ssh"}
    assert f"AuthorizedKeysFile {safe_home}/sshd/authorized_keys" in configs[0].decode()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _pids():
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def test_changed_public_address_is_recorded_and_announced(ip, relay, client_key, ssh_login):
    """Without --remote-port the relay picks the port; a restarted agent gets a new one."""
    pub = Path(f"{client_key}.pub").read_text().strip()
    opts = f"--via ssh --relay {relay.relay} --relay-host-key '{relay.host_key}' --relay-key-file {relay.client_key}"
    ip.cell(f"t = %tunnel ssh {opts} --key '{pub}'")
    t = ip.user_ns["t"]
    assert t.public_port and _login_ok(ssh_login, t, client_key)
    os.kill(t.pid, signal.SIGKILL)
    # Hold the old port as soon as the relay lets it go, so the restarted agent always gets a new
    # one and the announcement is always checked (the relay could otherwise hand out the same port).
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def hold() -> bool:
        try:
            holder.bind(("127.0.0.1", t.public_port))
            holder.listen(1)  # a listening socket: no other bind, reuse or not, gets this port
            return True
        except OSError:
            return False

    try:
        assert probes.wait_for(hold, 30, interval=0.01), f"the relay kept port {t.public_port}"
        assert supervisor.wait_restarted(supervisor.adopt("tunnel-ssh"), t.pid, timeout=30)
        assert tunnels.wait_public("ssh", timeout=30)
        c = ip.cell("%tunnel list")
        fresh = ip.user_ns["_colabmagic"].tunnels["ssh"]
        assert fresh.public_port != t.public_port
        assert f"new public address: 127.0.0.1:{fresh.public_port}" in c.stdout
        assert str(fresh.public_port) in c.output
    finally:
        holder.close()
    assert _login_ok(ssh_login, fresh, client_key)


def test_state_survives_reset(ip, relay, relay_args, client_key):
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    ip.cell("%reset -f")
    again = ip.cell("_colabmagic.tunnels['ssh']").value
    assert (again.pid, again.public_port, again.ssh_config()) == (t.pid, t.public_port, t.ssh_config())
    assert ip.cell("_colabmagic.sshd").value.known_hosts_line == t.known_hosts_line()
    status = ip.cell("%colabmagic status").value
    names = [row[0] for row in status.rows]
    assert "sshd" in names and "tunnel-ssh" in names
    ip.cell("%tunnel stop --all")
    assert ip.user_ns["_colabmagic"].tunnels == {} and ip.user_ns["_colabmagic"].sshd is None
    assert probes.wait_for(lambda: not probes.port_open(t.public_port), 15) and not procfs.is_running(t.pid)


def test_new_kernel_sees_the_same_tunnel(ip, relay, relay_args, client_key):
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    code = ("from colabmagic.services import tunnels; t = tunnels.current()['ssh']; "
            "print(t.pid); print(t.ssh_config(), end='')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    pid, _, config = r.stdout.partition("\n")
    assert int(pid) == t.pid and config == t.ssh_config()


def test_changing_the_key_keeps_sshd_and_swaps_access(ip, relay, relay_args, client_key, ssh_login, tmp_path):
    other = tmp_path / "other_laptop"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    args = relay_args(relay)
    ip.cell(f"t = %tunnel ssh {args} --key '{Path(f'{client_key}.pub').read_text().strip()}'")
    t = ip.user_ns["t"]
    sshd_pid = ip.user_ns["_colabmagic"].sshd.pid
    ip.cell(f"t = %tunnel ssh {args} --key-file {other}.pub")
    assert ip.user_ns["_colabmagic"].sshd.pid == sshd_pid and ip.user_ns["t"].pid == t.pid
    assert ssh_login(t.known_hosts_line(), t.ssh_config(), other, "true").returncode == 0
    assert ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, "true").returncode != 0


def test_interactive_login_shell_keeps_kernel_path_and_libraries(ip, relay, relay_args, client_key, tmp_path,
                                                                 monkeypatch):
    """Debian's /etc/profile resets PATH in login shells; our sessions still get the kernel's."""
    monkeypatch.setenv("PATH", "/opt/kernel-bin:" + os.environ["PATH"])
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/kernel-libs/lib64")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    (tmp_path / "known_hosts").write_text(t.known_hosts_line() + "\n")
    (tmp_path / "config").write_text(t.ssh_config())
    child = pexpect.spawn("ssh", ["-tt", "-F", str(tmp_path / "config"), "-o", f"UserKnownHostsFile={tmp_path}/known_hosts",
                                  "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(client_key), "colabmagic"],
                          timeout=30, encoding="utf-8")
    # $((6*7)) marks the shell's answer apart from the terminal's echo of the typed line.
    child.sendline('echo "P$((6*7))=$PATH"; echo "L$((6*7))=$LD_LIBRARY_PATH,$CUDA_VISIBLE_DEVICES"; exit')
    child.expect(pexpect.EOF)
    out = child.before
    path = re.search(r"P42=([^\s\x1b]*)", out).group(1)
    assert "/opt/kernel-bin" in path.split(":"), out
    assert re.search(r"L42=/opt/kernel-libs/lib64,0\b", out), out


def _agent_argv(name: str) -> list:
    service = supervisor.adopt(tunnels.service_name(name))
    assert service is not None and service.child is not None
    return Path(f"/proc/{service.child.pid}/cmdline").read_bytes().split(b"\0")


def test_relay_hop_uses_a_classic_exchange_only_under_an_end_to_end_ssh_session(ip, relay, relay_args, client_key,
                                                                                ssh_login):
    """The %tunnel ssh agent's hop to the relay skips the slow post-quantum exchange: what it carries is the
    user's own SSH session, which still negotiates OpenSSH's post-quantum exchange with our sshd end to end.
    A plain port's tunnel keeps OpenSSH's default exchange: there the hop is the only encryption."""
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    hop = [a for a in _agent_argv("ssh") if a.startswith(b"KexAlgorithms=")]
    assert hop and b"sntrup" not in hop[0] and b"mlkem" not in hop[0]
    r = ssh_login(t.known_hosts_line(), t.ssh_config(), client_key, "echo in", extra=["-v"])
    assert r.returncode == 0 and r.stdout.strip() == "in", r.stderr
    offered = subprocess.run(["ssh", "-Q", "kex"], capture_output=True, text=True).stdout.split()
    chosen = re.search(r"kex: algorithm: (\S+)", r.stderr)
    assert chosen is not None
    if any("sntrup" in k or "mlkem" in k for k in offered):  # OpenSSH 9.0 and later
        assert "sntrup" in chosen.group(1) or "mlkem" in chosen.group(1), chosen.group(1)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ip.cell(f"%tunnel {port} --proto tcp {relay_args(relay, probes.free_port())}")
        assert not [a for a in _agent_argv(str(port)) if a.startswith(b"KexAlgorithms=")]
        ip.cell(f"%tunnel stop {port}")
