"""Load: 50 parallel SSH logins and 20 parallel 50 MB scp transfers through the tunnel; start/stop cycles.

Through the tunnel means the real path a user takes: the ssh client to the
relay's forwarded port, over the tunnel agent's SSH connection, to
colabmagic's sshd. Every transfer is checked by checksum and every service
must still be the same process afterwards. The cycles start and stop each
service many times and then look for zombies, leftover processes and file
descriptors the test process did not get back.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, List

from support.fault_helpers import free_display, relay_args, ssh_argv
from support.files import sha256

from colabmagic.services import aria2 as aria2_service
from colabmagic.services import drive, sshd, vnc
from colabmagic.system import procfs, supervisor

LOGINS = 50
TRANSFERS = 20
SIZE = 50 * 1000 * 1000


def test_parallel_logins_and_transfers_through_the_tunnel(ip, relay, client_key, tmp_path, figures):
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay)} --key '{pub}'")
    t = ip.user_ns["t"]
    names = ("sshd", "tunnel-ssh", "demo-relay")
    pids = {n: supervisor.adopt(n).pid for n in names}
    base = ssh_argv(t, client_key, tmp_path)

    def login(i: int) -> bool:
        r = subprocess.run(base + [f"echo $(({i} * 7))"], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        return r.returncode == 0 and r.stdout.strip() == str(i * 7)

    start = time.monotonic()
    with ThreadPoolExecutor(LOGINS) as pool:
        logins = list(pool.map(login, range(LOGINS)))
    login_seconds = time.monotonic() - start

    source = tmp_path / "payload.bin"
    with open(source, "wb") as fh:
        fh.write(os.urandom(SIZE))
    want = sha256(source)
    target = tmp_path / "received"
    target.mkdir()
    scp = ["scp", "-q"] + base[1:-1]  # the same -F/-o/-i options, scp instead of ssh

    def transfer(i: int) -> str:
        dest = target / f"copy-{i}.bin"
        r = subprocess.run(scp + [str(source), f"colabmagic:{dest}"], capture_output=True, text=True,
                           timeout=600, stdin=subprocess.DEVNULL)
        return sha256(dest) if r.returncode == 0 and dest.exists() else f"failed: {r.stderr.strip()[-200:]}"

    start = time.monotonic()
    with ThreadPoolExecutor(TRANSFERS) as pool:
        sums = list(pool.map(transfer, range(TRANSFERS)))
    scp_seconds = time.monotonic() - start
    matched = sum(1 for s in sums if s == want)
    still = {n: (supervisor.adopt(n).pid if supervisor.adopt(n) else None) for n in names}
    restarts = {n: supervisor.adopt(n).restarts for n in names if supervisor.adopt(n)}
    figures.load("ssh logins", parallel=LOGINS, ok=sum(logins), seconds=round(login_seconds, 1))
    figures.load("scp 50 MB", parallel=TRANSFERS, checksums_matched=matched, seconds=round(scp_seconds, 1),
                 MB_per_s=round(TRANSFERS * SIZE / 1e6 / scp_seconds, 1))
    assert sum(logins) == LOGINS, supervisor.adopt("sshd").log_tail()
    assert matched == TRANSFERS, [s for s in sums if s != want][:3]
    assert still == pids and not any(restarts.values()), (pids, still, restarts)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _cycles(figures, name: str, count: int, start: Callable[[], None], stop: Callable[[], None],
            leftovers: Callable[[], List[int]]) -> None:
    start()
    stop()  # the first round opens whatever the process keeps for good (modules, caches)
    baseline = _fds()
    began = time.monotonic()
    for _ in range(count):
        start()
        stop()
    seconds = time.monotonic() - began
    zombies = procfs.zombies_of(os.getpid())
    left = leftovers()
    fds = _fds()
    figures.load(f"{name} start/stop", cycles=count, seconds=round(seconds, 1), zombies=len(zombies),
                 leftover_processes=len(left), fds_before=baseline, fds_after=fds)
    assert zombies == [] and left == [], (zombies, left)
    assert fds <= baseline, (baseline, fds)


def _processes_named(word: str) -> List[int]:
    """Live processes whose command line mentions ``word`` (our per-test home or display)."""
    found = []
    for pid in procfs.pids():
        ident = procfs.ProcessIdentity.of(pid)
        if ident is not None and pid != os.getpid() and any(word in part for part in ident.cmdline):
            found.append(pid)
    return found


def test_sshd_start_stop_cycles(cm_home, client_key, figures):
    key = Path(f"{client_key}.pub").read_text().strip()
    config = sshd.SshdConfig(keys=(key,))

    def start() -> None:
        assert sshd.ensure(config).pid

    _cycles(figures, "sshd", 100, start, sshd.stop, lambda: _processes_named(str(cm_home)))


def test_aria2_start_stop_cycles(cm_home, tmp_path, figures):
    from colabmagic.system import probes

    config = aria2_service.Aria2Config(download_dir=str(tmp_path), rpc_port=probes.free_port())

    def start() -> None:
        assert aria2_service.start(config).ping()

    _cycles(figures, "aria2", 100, start, aria2_service.stop, lambda: _processes_named(str(cm_home)))


def test_rclone_mount_start_stop_cycles(cm_home, tmp_path, figures):
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "f.txt").write_text("x")
    mp = tmp_path / "mnt"
    config = drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp))
    from colabmagic.services.drive import rclone, writers

    backend = rclone.RcloneBackend(config.resolved())

    def start() -> None:
        backend.mount()
        assert (mp / "f.txt").read_text() == "x"

    def stop() -> None:
        backend.stop_mount()

    try:
        _cycles(figures, "rclone mount", 100, start, stop, lambda: _processes_named(str(mp)))
    finally:
        backend.stop_mount()
        writers.unguard(str(mp))


VNC_CYCLES = 20  # each cycle starts Xvnc and a whole XFCE session (4-9 s here): 100 would add 7-15 minutes



def test_vnc_start_stop_cycles(cm_home, desktop_home, figures):
    number = free_display()
    config = vnc.VncConfig(display=f":{number}")

    def start() -> None:
        assert vnc.start(config, announce=lambda message: None).pid

    def stop() -> None:
        vnc.stop()

    _cycles(figures, "vnc (Xvnc + XFCE)", VNC_CYCLES, start, stop, lambda: _processes_named(f":{number}"))
