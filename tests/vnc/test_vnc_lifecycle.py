"""Stop leaves nothing behind (no Xvnc, XFCE, D-Bus, websockify, zombies), and a taken port is named, not taken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.vnc_helpers import desktop_processes, display_processes

from colabmagic.errors import PortInUseError
from colabmagic.system import probes, procfs, supervisor

STEPS = ("vnc-xserver", "vnc-session", "vnc-web")


def _tokens() -> list:
    return [t for t in (supervisor.Service(n).token for n in STEPS) if t]


def test_stop_leaves_no_desktop_process(ip, display_number):
    ip.cell(f"%vnc start --web --display :{display_number}")
    tokens = _tokens()
    assert len(tokens) == 3
    running = desktop_processes(tokens)
    names = " ".join(cmd for _pid, cmd in running)
    for expected in ("Xvnc", "xfce4-session", "xfce4-panel", "dbus-daemon", "websockify"):
        assert expected in names, f"{expected} is not running: {names}"
    c = ip.cell("%vnc stop")
    assert "stopped the desktop" in c.stdout
    assert desktop_processes(tokens) == []
    assert display_processes(display_number) == []
    assert not Path(f"/tmp/.X{display_number}-lock").exists()
    assert not probes.port_open(5900 + display_number)
    assert ip.cell("%vnc status").value is None
    assert ip.user_ns["_colabmagic"].vnc is None
    assert "no desktop was running" in ip.cell("%vnc stop").stdout  # a second stop is a no-op


def test_ten_start_stop_cycles_leave_no_zombies_or_processes(ip, display_number):
    all_tokens = []
    for cycle in range(10):
        web = " --web" if cycle % 2 else ""
        ip.cell(f"%vnc start --display :{display_number}{web}")
        all_tokens.extend(_tokens())
        ip.cell("%vnc stop")
    assert len(all_tokens) == 25
    assert desktop_processes(all_tokens) == []
    assert display_processes(display_number) == []
    assert procfs.zombies_of(os.getpid()) == []
    assert supervisor.running() == []


def test_colabmagic_stop_group_stops_the_desktop(ip, display_number):
    ip.cell(f"%vnc start --display :{display_number}")
    tokens = _tokens()
    c = ip.cell("%colabmagic stop vnc")
    assert "vnc-session" in c.stdout and "vnc-xserver" in c.stdout
    assert desktop_processes(tokens) == []
    assert display_processes(display_number) == []


def test_a_new_kernel_adopts_the_running_desktop(ip, display_number, cm_home):
    desktop = ip.cell(f"%vnc start --display :{display_number}").value
    code = "from colabmagic.services import vnc\nd = vnc.current()\nprint(d.pid, d.port, d.status)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, COLABMAGIC_HOME=str(cm_home)))
    assert out.stdout.split() == [str(desktop.pid), str(desktop.port), "running"], out.stderr


def test_taken_vnc_port_is_named_and_left_alone(ip, display_number, tmp_path):
    port = 5900 + display_number
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import socket,sys,time\n"
         "s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(1)\n"
         "print('listening', flush=True); time.sleep(600)\n", str(port)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        c = ip.cell(f"%vnc start --display :{display_number}", check=False)
        assert isinstance(c.error, PortInUseError)
        assert str(port) in c.error.message and str(holder.pid) in c.error.message
        assert holder.poll() is None and procfs.is_running(holder.pid)
        assert supervisor.running() == []  # nothing was started
    finally:
        holder.kill()
        holder.wait()


def test_bad_input_is_one_line_and_starts_nothing(ip):
    for line in ("%vnc start --display 1x", "%vnc start --geometry huge", "%vnc start --depth 7",
                 "%vnc start --display :-1"):
        c = ip.cell(line, check=False)
        assert c.error is not None, line
        assert "Traceback" not in c.output
    assert supervisor.running() == []


def test_a_bad_password_is_refused_before_anything_is_written(display_number, cm_home):
    from colabmagic.errors import BadInputError
    from colabmagic.services import vnc
    from colabmagic.system import secrets

    for bad in ("short", "much-too-long-for-vnc"):
        with pytest.raises(BadInputError, match="6 to 8 characters"):
            vnc.start(vnc.VncConfig(display=f":{display_number}"), password=bad)
    assert not secrets.secret_path("VNC_PASSWORD").exists()
    assert not (cm_home / "vnc" / "passwd").exists()
    assert supervisor.running() == []


def test_screenshot_without_desktop_is_a_clear_error(ip, tmp_path):
    c = ip.cell("%vnc screenshot", check=False)
    assert c.error is not None and "no desktop is running" in str(c.error)


def test_a_failing_session_undoes_the_started_x_server(ip, display_number, tmp_path, monkeypatch):
    # A broken XFCE (its start script exits at once) stands in for any failure of a later step.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    broken = fake_bin / "startxfce4"
    broken.write_text("#!/bin/sh\necho 'startxfce4: cannot start (broken on purpose)' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    c = ip.cell(f"%vnc start --display :{display_number}", check=False)
    assert c.error is not None and "did not start" in str(c.error)
    assert "broken on purpose" in str(c.error)  # the session's log tail comes with the error
    assert supervisor.running() == []
    assert display_processes(display_number) == []
    assert not probes.port_open(5900 + display_number)


def test_killed_x_server_comes_back_with_its_desktop(ip, display_number, tmp_path):
    import signal

    from support.vnc_helpers import capture_until_xfce

    desktop = ip.cell(f"%vnc start --display :{display_number}").value
    tokens = _tokens()
    os.kill(desktop.pid, signal.SIGKILL)
    assert supervisor.wait_restarted(supervisor.Service("vnc-xserver"), desktop.pid, timeout=60)
    # the session died with its X server and is restarted too; the same password still gets in
    capture_until_xfce(desktop.port, ip.user_ns["_colabmagic"].vnc.password.reveal(), tmp_path / "back.png",
                       timeout=90)
    back = ip.user_ns["_colabmagic"].vnc
    assert back.pid != desktop.pid and back.restarts >= 1
    ip.cell("%vnc stop")
    assert desktop_processes(tokens) == []
    assert display_processes(display_number) == []
