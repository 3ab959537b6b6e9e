"""The kernel interrupted and killed under running daemons, a port held by a foreign process, the dpkg lock held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.fault_helpers import foreign_listener, free_display, login_ok, relay_args

from colabmagic.errors import PortInUseError
from colabmagic.system import installer, procfs, supervisor

STAND_IN_KERNEL = textwrap.dedent(
    """
    import sys, time
    from IPython.testing.globalipapp import start_ipython
    ip = start_ipython()
    ip.run_line_magic("load_ext", "colabmagic")
    for line in sys.argv[1:]:
        result = ip.run_cell(line)
        if not result.success:
            print("FAILED", line, flush=True)
            sys.exit(1)
    print("READY", flush=True)
    while True:
        time.sleep(0.2)   # a kernel waiting for the next cell
    """
)


def test_kernel_interrupted_then_killed_daemons_survive_and_are_readopted(ip, relay, client_key, tmp_path, figures):
    pub = Path(f"{client_key}.pub").read_text().strip()
    (tmp_path / "dl").mkdir()
    from colabmagic.system import probes

    rpc_port = probes.free_port()
    cells = [
        f"%config Aria2Magics.download_dir = {str(tmp_path / 'dl')!r}",
        f"%config Aria2Magics.rpc_port = {rpc_port}",
        f"%tunnel ssh {relay_args(relay)} --key '{pub}'",
        "%aria2 start",
    ]
    # A stand-in kernel: IPython in its own session and process group, as jupyter_client starts one.
    kernel = subprocess.Popen([sys.executable, "-c", STAND_IN_KERNEL, *cells], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True, env=dict(os.environ))
    assert kernel.stdout is not None
    seen = []
    for line in kernel.stdout:
        seen.append(line)
        if "READY" in line or "FAILED" in line:
            break
    assert "READY" in seen[-1], "".join(seen[-40:])
    names = ("sshd", "tunnel-ssh", "aria2")
    before = {n: supervisor.adopt(n).pid for n in names}
    assert all(before.values()), before

    os.killpg(kernel.pid, signal.SIGINT)   # the notebook's Interrupt button
    time.sleep(0.5)
    os.killpg(kernel.pid, signal.SIGKILL)  # then a kernel restart
    kernel.wait(timeout=10)

    after = {n: (supervisor.adopt(n).pid if supervisor.adopt(n) else None) for n in names}
    survived = after == before
    # The test's own shell is the new kernel: it re-adopts everything and the services work.
    state = ip.user_ns["_colabmagic"]
    t = state.tunnels.get("ssh")
    adopted = state.sshd is not None and t is not None and state.aria2 is not None
    works = adopted and login_ok(t, client_key, tmp_path) and state.aria2.ping()
    status = str(ip.cell("%colabmagic status").value)
    listed = all(str(pid) in status for pid in before.values())
    again = ip.cell(f"%tunnel ssh {relay_args(relay)} --key '{pub}'", check=False)
    figures.fault("kernel SIGINT then SIGKILL (process group)", survived and works and listed, None,
                  "sshd, tunnel agent and aria2c keep their pids; a new shell re-adopts and uses them")
    assert survived, (before, after)
    assert adopted and works and listed, status
    assert again.error is None and supervisor.adopt("sshd").pid == before["sshd"]



def test_port_held_by_foreign_process_is_named_not_killed(ip, relay, client_key, tmp_path, desktop_home, figures):
    pub = Path(f"{client_key}.pub").read_text().strip()
    (tmp_path / "dl").mkdir()
    number = free_display()
    cases = {
        "colabmagic's sshd (--port)": lambda p: f"%tunnel ssh {relay_args(relay)} --key '{pub}' --port {p}",
        "aria2 RPC (rpc_port)": lambda p: (f"%config Aria2Magics.download_dir = {str(tmp_path / 'dl')!r}\n"
                                           f"%config Aria2Magics.rpc_port = {p}\n%aria2 start"),
        "VNC server (display port)": None,
    }
    for what, make in cases.items():
        proc, port = foreign_listener(5900 + number if make is None else 0)
        try:
            line = make(port) if make else f"%vnc start --display :{number}"
            running = {s.name for s in supervisor.running()}
            c = ip.cell(line, check=False)
            named = isinstance(c.error, PortInUseError) and str(proc.pid) in str(c.error) and str(port) in str(c.error)
            alive = proc.poll() is None and procfs.port_holder(port) is not None
            started = {s.name for s in supervisor.running()} - running
            ok = named and alive and not started
            figures.fault(f"port held by a foreign process: {what}", ok, None,
                          f"said: {str(c.error).splitlines()[0][:100] if c.error else 'no error'}")
            assert named, c.output
            assert alive and not started, started
        finally:
            proc.kill()
            proc.wait()


PACKAGE = "hello"  # small, no dependencies; the foundation installer test uses it too

LOCK_HOLDER = textwrap.dedent(
    """
    import fcntl, sys, time
    fh = open("/var/lib/dpkg/lock-frontend", "w")
    fcntl.lockf(fh, fcntl.LOCK_EX)
    print("LOCKED", flush=True)
    time.sleep(float(sys.argv[1]))
    """
)


def test_installer_waits_for_the_dpkg_lock_then_proceeds(cm_home, figures):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if installer.is_installed(PACKAGE):
        installer.remove_packages([PACKAGE])
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, "8"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"
        start = time.monotonic()
        installed = installer.ensure_packages([PACKAGE])
        took = time.monotonic() - start
        released_first = holder.poll() is not None  # apt could only proceed once the holder let go
        ok = installed == [PACKAGE] and installer.is_installed(PACKAGE) and released_first
        figures.fault("dpkg lock held by another process", ok, took, "the installer waited, then installed")
        assert ok, (installed, released_first)
        assert holder.returncode == 0  # it ended by itself: the installer did not kill it
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        if installer.is_installed(PACKAGE):
            installer.remove_packages([PACKAGE])
