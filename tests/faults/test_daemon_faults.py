"""SIGKILL of each daemon (Xvnc, websockify, aria2c, rclone mount): restored or clearly reported, timed.

Also a download that fills its disk (a small tmpfs): reported for that
download, with no crash loop of aria2c.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.fault_helpers import free_display, release_drive_mount, rfb_login, time_until

from colabmagic.demo.webserver import FileServer, make_file
from colabmagic.services.drive import tracking
from colabmagic.system import probes, supervisor


def test_sigkill_xvnc_and_websockify(ip, desktop_home, tmp_path, figures):
    number = free_display()
    desktop = ip.cell(f"%vnc start --web --display :{number}").value
    password = ip.user_ns["_colabmagic"].vnc.password.reveal()
    assert rfb_login(desktop.port, password, tmp_path / "before.png")

    old = desktop.pid
    os.kill(old, signal.SIGKILL)
    ok, took = time_until(lambda: supervisor.Service("vnc-xserver").pid not in (None, old)
                          and rfb_login(desktop.port, password, tmp_path / "after.png"), timeout=120, interval=0.5)
    figures.fault("SIGKILL of Xvnc", ok, took, "a VNC client logs in again with the same password")
    assert ok, supervisor.Service("vnc-xserver").log_tail()

    web = supervisor.Service("vnc-web")
    old_web = web.pid
    assert old_web and desktop.web_url
    url = desktop.web_url.split("#")[0]
    assert probes.http_ok(url)
    os.kill(old_web, signal.SIGKILL)
    ok, took = time_until(lambda: web.pid not in (None, old_web) and probes.http_ok(url), timeout=60)
    figures.fault("SIGKILL of websockify", ok, took, "noVNC page served again")
    assert ok, web.log_tail()


@pytest.fixture
def aria2_shell(ip, tmp_path):
    ip.config.pop("Aria2Magics", None)
    magics = ip.magics_manager.registry["Aria2Magics"]
    for name in magics.trait_names(config=True):
        if name != "offline":
            setattr(magics, name, magics.trait_defaults(name))
    (tmp_path / "dl").mkdir()
    ip.cell(f"%config Aria2Magics.download_dir = {str(tmp_path / 'dl')!r}")
    ip.cell(f"%config Aria2Magics.rpc_port = {probes.free_port()}")
    return ip


@pytest.fixture
def download_site(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    digest = make_file(str(root / "file.bin"), 4_000_000, seed=7)
    make_file(str(root / "big.bin"), 40_000_000, seed=8)
    server = FileServer(str(root)).start()
    yield server, digest
    server.stop()


def test_sigkill_aria2c(aria2_shell, download_site, figures):
    server, digest = download_site
    aria2 = aria2_shell.cell("%aria2 start").value
    old = aria2.pid
    os.kill(old, signal.SIGKILL)
    ok, took = time_until(lambda: aria2.ping() and aria2.pid not in (None, old), timeout=60)
    figures.fault("SIGKILL of aria2c", ok, took, "RPC answers again")
    assert ok, supervisor.Service("aria2").log_tail()
    c = aria2_shell.cell(f"%aria2 add {server.url('file.bin')} --wait")
    import hashlib

    got = hashlib.sha256(Path(c.value.path).read_bytes()).hexdigest()
    assert got == digest


@pytest.fixture
def tmpfs(tmp_path):
    point = tmp_path / "small-disk"
    point.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_disk_full_during_download(aria2_shell, download_site, tmpfs, figures):
    server, digest = download_site
    aria2 = aria2_shell.cell("%aria2 start").value
    pid, restarts = aria2.pid, supervisor.Service("aria2").restarts
    c = aria2_shell.cell(f"%aria2 add {server.url('big.bin')} --dir {tmpfs} --wait", check=False)
    shown = c.output + (str(c.error) if c.error else "")
    d = aria2.downloads()
    big = [x for x in d if x.name == "big.bin" or "big.bin" in str(x.path)]
    assert big, d
    state = big[-1].status
    reported = c.error is not None and state == "error"
    # aria2c itself keeps running: same pid, no restart, and it still downloads elsewhere
    same_daemon = aria2.pid == pid and supervisor.Service("aria2").restarts == restarts
    after = aria2_shell.cell(f"%aria2 add {server.url('file.bin')} --wait", check=False)
    first = str(c.error).splitlines()[0][:90] if c.error else ""
    figures.fault("disk full during a download", reported and same_daemon and after.error is None, None,
                  f"download status {state!r}, aria2c not restarted; said: {first}")
    assert reported, shown
    assert "space" in shown.lower() or "disk" in shown.lower(), shown
    assert same_daemon
    assert after.error is None, after.output


def test_sigkill_rclone_mount(ip, tmp_path, cm_home, figures):
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "kept.txt").write_text("on the remote")
    mp = tmp_path / "mnt"
    ip.cell(f"%config DriveMagics.remote = {str(remote)!r}")
    try:
        ip.cell(f"%%drive_sync --backend rclone --path {mp}\nopen({str(mp)!r} + '/a.txt', 'w').write('a')")
        service = supervisor.adopt("drive-rclone")
        old = service.pid

        def readable() -> bool:
            try:
                return (mp / "kept.txt").read_text() == "on the remote"
            except OSError:
                return False

        os.kill(old, signal.SIGKILL)
        back, took = time_until(lambda: service.pid not in (None, old) and tracking.is_mounted(str(mp))
                                and readable(), timeout=45)
        # Survived means working again, not merely reported: the next %%drive_sync runs without an
        # error, the mount serves the remote's files, and a file written through it reaches the remote.
        c = ip.cell(f"%%drive_sync --backend rclone --path {mp}\nopen({str(mp)!r} + '/b.txt', 'w').write('b')",
                    check=False)

        def synced() -> bool:
            try:
                return (remote / "b.txt").read_text() == "b"
            except OSError:
                return False

        ok = c.error is None and readable() and probes.wait_for(synced, 30)
        if ok:
            how = ("the mount came back by itself" if back else "not back by itself in 45 s; the next "
                   "%%drive_sync remounted it") + "; it serves the remote's files and a new file reached the remote"
        else:
            how = (f"{'back' if back else 'not back by itself in 45 s'}; next %%drive_sync: "
                   f"{type(c.error).__name__ if c.error else 'no error'}, remote file "
                   f"{'present' if synced() else 'missing'}: NOT working")
        took = took if back else None
        figures.fault("SIGKILL of rclone mount", ok, took, how)
        assert ok, (how, str(c.error) if c.error else "", service.log_tail())
    finally:
        release_drive_mount(mp)
