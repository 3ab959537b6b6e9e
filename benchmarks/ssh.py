"""Rows 1 and 3: SSH ready through a relay (cold, warm, and on a new runtime with an identity) and throughput.

colabmagic's way is ``%tunnel ssh --via ssh`` to a loopback relay sshd
(colabmagic.demo.relay). The recipe's way is the classic one done by hand in
a throwaway place: (cold: ``apt-get install openssh-server``), a COPY of
/etc/ssh/sshd_config with lines appended (temp port, temp authorized_keys),
``sshd -D -f COPY``, and ``ssh -R`` with default options. Both are timed to
the first successful login through the relay. The system sshd and its
config are never touched. Cold rows remove openssh-server first (said
before it is done) and put it back afterwards. The relay runs from a private
copy of the sshd binary so removing the package does not take it down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from .harness import (
    APT_ENV,
    APT_GET,
    Context,
    Result,
    measure,
    run_quiet,
    stop_services,
    timed,
    which,
)

PACKAGE = "openssh-server"


class Relay:
    """The loopback relay ("your server"), in its own home so run homes can come and go."""

    def __init__(self, ctx: Context):
        from colabmagic.demo import relay as demo_relay

        self.ctx = ctx
        self.home = ctx.fresh_home("relay")
        binary = self.home / "bin" / "sshd"
        binary.parent.mkdir()
        shutil.copy2(which("sshd"), binary)  # survives `apt-get remove openssh-server`
        saved = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{binary.parent}:{saved}"
        try:
            self.relay = demo_relay.start(folder=self.home / "relay", name="bench-relay")
        finally:
            os.environ["PATH"] = saved
        self.known_hosts = self.home / "relay_known_hosts"
        self.known_hosts.write_text(self.relay.known_hosts_line() + "\n")
        self.user_key = self.home / "laptop_ed25519"
        run_quiet(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(self.user_key)])
        self.user_pub = Path(f"{self.user_key}.pub").read_text().strip()

    def stop(self) -> None:
        from colabmagic.demo import relay as demo_relay

        os.environ["COLABMAGIC_HOME"] = str(self.home)
        demo_relay.stop(name="bench-relay")


def _free_port() -> int:
    from colabmagic.system import probes

    return probes.free_port()


def _ssh_base(key: Path) -> List[str]:
    return ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "ConnectTimeout=5", "-i", str(key)]


def _wait_login(argv: List[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        r = subprocess.run(argv + ["echo", "ok"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
        if r.returncode == 0 and r.stdout.strip() == "ok":
            return
        last = r.stderr.strip()[-300:]
        time.sleep(0.1)
    raise RuntimeError(f"no login within {timeout:.0f}s: {last}")


class OurTunnel:
    """``%tunnel ssh --via ssh`` in a fresh home; ``login`` is the user's ssh with the printed config."""

    def __init__(self, ctx: Context, relay: Relay):
        self.ctx, self.relay = ctx, relay
        self.config: Optional[Path] = None
        self.tunnel: Any = None

    def start(self) -> None:
        r = self.relay.relay
        home = self.ctx.fresh_home("ssh")
        port = _free_port()
        self.tunnel = self.ctx.cell(
            f"%tunnel ssh --via ssh --relay {r.relay} --relay-host-key '{r.host_key}' "
            f"--relay-key-file {r.client_key} --remote-port {port} --key '{self.relay.user_pub}'")
        folder = home / "laptop"
        folder.mkdir(exist_ok=True)
        (folder / "known_hosts").write_text(self.tunnel.known_hosts_line() + "\n")
        self.config = folder / "config"
        self.config.write_text(self.tunnel.ssh_config())
        _wait_login(self.login())

    def login(self, *extra: str) -> List[str]:
        assert self.config is not None
        known = self.config.parent / "known_hosts"
        return _ssh_base(self.relay.user_key) + [*extra,
            "-F", str(self.config), "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
            "colabmagic"]

    def stop(self) -> None:
        stop_services()


class HandTunnel:
    """The classic recipe by hand: copied sshd_config + appended lines, sshd -D, ssh -R with defaults."""

    def __init__(self, ctx: Context, relay: Relay, ssh_options: Tuple[str, ...] = (),
                 host_key: Optional[Path] = None, remote_port: int = 0):
        self.ctx, self.relay = ctx, relay
        self.procs: List[subprocess.Popen] = []
        self.remote_port = remote_port
        self.ssh_options = ssh_options
        self.host_key = host_key  # a host key saved from an earlier runtime (the recipe copies it back)
        self.known_hosts: Optional[Path] = None

    def start(self, install: bool = False) -> None:
        if install:
            run_quiet([*APT_GET, "install", PACKAGE],
                      env={**os.environ, **APT_ENV})
        folder = self.ctx.folder("recipe-ssh")
        port = _free_port()
        config = folder / "sshd_config"
        shutil.copyfile("/etc/ssh/sshd_config", config)
        (folder / "authorized_keys").write_text(self.relay.user_pub + "\n")
        with open(config, "a") as fh:  # the recipe's "append to sshd_config", on a copy
            fh.write(f"\nPort {port}\nListenAddress 127.0.0.1\nPermitRootLogin yes\n"
                     f"AuthorizedKeysFile {folder}/authorized_keys\nStrictModes no\n"
                     f"PidFile {folder}/sshd.pid\n")
            if self.host_key is not None:  # the recipe's "cp /content/drive/ssh_host_* /etc/ssh/"
                shutil.copyfile(self.host_key, folder / "ssh_host_ed25519_key")
                os.chmod(folder / "ssh_host_ed25519_key", 0o600)
                fh.write(f"HostKey {folder}/ssh_host_ed25519_key\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._spawn([which("sshd"), "-D", "-f", str(config)], folder / "sshd.log")
        self.remote_port = self.remote_port or _free_port()
        r = self.relay.relay
        self._spawn(["ssh", "-N", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.relay.known_hosts}",
                     "-i", str(r.client_key), *self.ssh_options,
                     "-R", f"{self.remote_port}:127.0.0.1:{port}", "-p", str(r.port), "root@127.0.0.1"],
                    folder / "ssh-R.log")
        _wait_login(self.login())

    def login(self) -> List[str]:
        if self.known_hosts is not None:  # the laptop pinned the saved key last time
            return _ssh_base(self.relay.user_key) + [
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-p", str(self.remote_port), "root@127.0.0.1"]
        return _ssh_base(self.relay.user_key) + [
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-p", str(self.remote_port), "root@127.0.0.1"]

    def _spawn(self, argv: List[str], log: Path) -> None:
        with open(log, "ab") as fh:
            self.procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


def _ready(ctx: Context, relay: Relay, cold: bool) -> Result:
    from colabmagic.system import installer

    def ours() -> float:
        if cold:
            installer.remove_packages([PACKAGE])
        t = OurTunnel(ctx, relay)
        try:
            return timed(t.start)
        finally:
            t.stop()

    def theirs() -> float:
        if cold:
            installer.remove_packages([PACKAGE])
        h = HandTunnel(ctx, relay)
        try:
            return timed(lambda: h.start(install=cold))
        finally:
            h.stop()

    runs = ctx.cold_runs if cold else ctx.runs
    if cold:
        ctx.say(f"ssh-cold: removing the Debian package {PACKAGE} before each cold run "
                "(apt-get remove; configs and host keys stay) and reinstalling it afterwards")
    try:
        mine, recipe = measure(runs, ours, theirs)
    finally:
        if cold:
            installer.ensure_packages([PACKAGE])
    return Result(
        row="SSH ready, cold" if cold else "SSH ready, warm",
        what="to the first login through the relay" + (" (openssh-server not installed)" if cold else ""),
        ours=mine, theirs=recipe, ours_label="`%tunnel ssh --via ssh`",
        theirs_label="install + sshd_config copy + sshd + `ssh -R`" if cold else "sshd_config copy + sshd + `ssh -R`",
        note=("the recipe runs `apt-get install` without `apt-get update` (the blog recipes run both); "
              "colabmagic's installer skips the update when apt's lists are fresh") if cold else "",
    )


def _identity(ctx: Context, relay: Relay) -> Result:
    """A brand-new runtime with an identity folder, to the first login with the laptop's unchanged files."""
    r = relay.relay
    saved = ctx.folder("identity")
    ident = saved / "colab-identity"
    laptop = saved / "laptop"
    laptop.mkdir()
    remote_port = _free_port()
    ctx.fresh_home("identity-first")  # the runtime that made the identity (not timed)
    first = ctx.cell(f"%tunnel ssh --identity {ident} --via ssh --relay {r.relay} --relay-host-key '{r.host_key}' "
                     f"--relay-key-file {r.client_key} --remote-port {remote_port} --key '{relay.user_pub}'")
    (laptop / "known_hosts").write_text(first.known_hosts_line() + "\n")
    (laptop / "config").write_text(first.ssh_config())
    alias = first.ssh.host_alias
    stop_services()
    login = _ssh_base(relay.user_key) + ["-F", str(laptop / "config"), "-o",
                                         f"UserKnownHostsFile={laptop / 'known_hosts'}",
                                         "-o", "GlobalKnownHostsFile=/dev/null", alias]
    hand_key = saved / "hand_host_key"  # the recipe's key, saved to "Drive" once
    run_quiet(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hand_key)])
    hand_port = _free_port()
    hand_known = saved / "hand_known_hosts"
    hand_known.write_text(f"[127.0.0.1]:{hand_port} " + " ".join(Path(f"{hand_key}.pub").read_text().split()[:2])
                          + "\n")

    def ours() -> float:
        ctx.fresh_home("identity")  # a new runtime: no host key, nothing running
        try:
            return timed(lambda: (ctx.cell(f"%tunnel ssh --identity {ident}"), _wait_login(login)))
        finally:
            stop_services()

    def theirs() -> float:
        h = HandTunnel(ctx, relay, host_key=hand_key, remote_port=hand_port)
        h.known_hosts = hand_known
        try:
            return timed(h.start)
        finally:
            h.stop()

    mine, recipe = measure(ctx.runs, ours, theirs)
    return Result(
        row="SSH ready, new runtime with an identity",
        what="to the first login with the laptop's unchanged known_hosts and config (StrictHostKeyChecking=yes)",
        ours=mine, theirs=recipe, ours_label="`%tunnel ssh --identity DIR`",
        theirs_label="copy the saved host key + sshd_config copy + sshd + `ssh -R` to the same port",
        note="both restore a host key saved on an earlier runtime and open the same relay port, so the laptop's "
             "files work unchanged; colabmagic also restores the authorized keys, relay key and relay settings",
    )


def _push(login: List[str], size: int) -> float:
    """Send ``size`` zero bytes through the login into `cat > /dev/null`; seconds."""
    began = time.perf_counter()
    head = subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE)
    assert head.stdout is not None
    ssh = subprocess.run(login + ["cat > /dev/null"], stdin=head.stdout, capture_output=True, timeout=1800)
    head.stdout.close()
    head.wait()
    took = time.perf_counter() - began
    if ssh.returncode != 0:
        raise RuntimeError(f"throughput transfer failed: {ssh.stderr.decode(errors='replace')[-300:]}")
    return took


def _latency(ctx: Context, magic: str, label: str, baseline: Callable[[], Any], baseline_label: str) -> Result:
    runs = max(ctx.runs, 5)
    mine, recipe = measure(runs, lambda: timed(lambda: ctx.cell(magic)), lambda: timed(baseline))
    return Result(row=f"latency: `{magic}`", what=label, ours=mine, theirs=recipe, unit="ms",
                  theirs_label=baseline_label)


def run(ctx: Context, rows: List[str]) -> List[Result]:
    from colabmagic.system import installer

    results: List[Result] = []
    installer.ensure_packages([PACKAGE])  # warm rows and the relay need it (not timed)
    relay = Relay(ctx)
    try:
        if "ssh" in rows:
            results.append(_ready(ctx, relay, cold=False))
        if "ssh-cold" in rows:
            results.append(_ready(ctx, relay, cold=True))
        if "ssh-identity" in rows:
            results.append(_identity(ctx, relay))
        if "throughput" in rows or "latency" in rows:
            ours, hand = OurTunnel(ctx, relay), HandTunnel(ctx, relay)
            try:
                ours.start()
                hand.start()
                if "throughput" in rows:
                    size = ctx.size
                    mine, recipe = measure(ctx.runs, lambda: _push(ours.login(), size),
                                           lambda: _push(hand.login(), size))
                    what = f"{size / (1 << 30):.2f} GiB into `cat > /dev/null`"
                    results.append(Result(
                        row="Tunnel throughput", what=what, ours=mine, theirs=recipe,
                        ours_label="printed Host block", theirs_label="`ssh -R`, default options",
                        note="the printed Host block and colabmagic's agent prefer aes128-gcm (AES-NI) on both hops; "
                             "the recipe's `ssh -R` and client keep OpenSSH's default, chacha20-poly1305"))
                if "latency" in rows:
                    results.append(_latency(ctx, "%tunnel list", "tunnel running",
                                            lambda: run_quiet(["ss", "-tnp"]), "`ss -tnp`"))
                    results.append(_latency(ctx, "%colabmagic status", "sshd + tunnel running",
                                            lambda: run_quiet(["ps", "-ef"]), "`ps -ef`"))
            finally:
                hand.stop()
                ours.stop()
    finally:
        relay.stop()
    return results
