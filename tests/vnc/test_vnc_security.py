"""Only the password gets in: wrong passwords and security type None are refused; everything is on loopback."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from support.vnc_helpers import rfb_capture, security_types, vnc_pids

from colabmagic.errors import ServiceError
from colabmagic.services import vnc
from colabmagic.system import procfs

LOOPBACK = {"127.0.0.1", "::1"}


def _socket_inodes(pid: int) -> set:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def test_wrong_password_and_no_auth_are_refused_and_all_listeners_are_loopback(ip, display_number, tmp_path):
    desktop = ip.cell(f"%vnc start --web --display :{display_number}").value
    password = ip.user_ns["_colabmagic"].vnc.password.reveal()

    wrong = "x" + password[1:] if password[0] != "x" else "y" + password[1:]
    code, out = rfb_capture(desktop.port, wrong, tmp_path / "wrong.png")
    assert code != 0 and not (tmp_path / "wrong.png").exists()
    assert "auth" in out.lower() or "password" in out.lower(), out
    with pytest.raises(ServiceError, match="refused the password"):
        vnc.screenshot(password=wrong)
    c = ip.cell(f"%vnc screenshot --save {tmp_path / 'right.png'}")  # the right one still works
    assert (tmp_path / "right.png").read_bytes() == c.value.data

    # RFB 3.8: the server lists the security types it accepts; VNC auth (2) only, never None (1).
    offered = security_types(desktop.port)
    assert 2 in offered and 1 not in offered, offered
    # RFB 3.3: the server picks the type itself; it must pick VNC auth.
    with socket.create_connection(("127.0.0.1", desktop.port), timeout=10) as sock:
        sock.settimeout(10)
        assert sock.recv(12).startswith(b"RFB ")
        sock.sendall(b"RFB 003.003\n")
        chosen = b""
        while len(chosen) < 4:
            chunk = sock.recv(4 - len(chosen))
            assert chunk, "server closed the connection"
            chosen += chunk
        assert int.from_bytes(chosen, "big") == 2

    # Every listening socket of every desktop process is on loopback, and there are some.
    pids = vnc_pids()
    assert desktop.pid in pids
    ours = set()
    for pid in pids:
        ours |= _socket_inodes(pid)
        assert password not in " ".join(procfs.cmdline(pid)), "the password is on a command line"
    listening = [(ip_, port) for ip_, port, inode in procfs.listeners() if inode in ours]
    ports = {port for _ip, port in listening}
    web_port = int(desktop.web_url.split(":")[2].split("/")[0])
    assert desktop.port in ports and web_port in ports, listening
    assert all(ip_ in LOOPBACK for ip_, _port in listening), listening

    # The X server itself takes only clients holding our cookie (no open display for other local users).
    env = dict(os.environ, DISPLAY=f":{display_number}", XAUTHORITY=str(tmp_path / "no-cookie"))
    refused = subprocess.run(["xprop", "-root", "_NET_CLIENT_LIST"], env=env, capture_output=True, text=True,
                             timeout=30)
    assert refused.returncode != 0
