"""Process supervision with real daemons: survive the kernel, re-adoption, restart, foreign pids."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from colabmagic.system import probes, procfs, supervisor


def web_spec(port: int, root: Path) -> supervisor.ServiceSpec:
    return supervisor.ServiceSpec(
        name="web",
        argv=[sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)],
        info={"address": f"127.0.0.1:{port}", "group": "demo"},
        backoff_max=2.0,
    )


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=5) as resp:
        return resp.read().decode()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the daemon")
    return root


STAND_IN_KERNEL = textwrap.dedent(
    """
    import sys, time
    from IPython.testing.globalipapp import start_ipython
    ip = start_ipython()
    ip.run_line_magic("load_ext", "colabmagic")
    ip.run_cell('''
    import sys
    from colabmagic.system import supervisor, probes
    port = int(sys.argv[1])
    spec = supervisor.ServiceSpec(name="web", argv=[sys.executable, "-m", "http.server", "--bind",
        "127.0.0.1", "--directory", sys.argv[2], str(port)], info={"address": f"127.0.0.1:{port}"})
    _ = supervisor.start(spec, ready=lambda: probes.port_open(port), timeout=20)
    ''')
    print("READY", flush=True)
    while True:
        time.sleep(0.2)   # a kernel waiting for the next cell
    """
)


def test_daemon_survives_interrupt_and_kernel_death_and_is_readopted(ip, site, cm_home):
    port = probes.free_port()
    # A stand-in kernel: its own process group, as jupyter_client gives a kernel.
    kernel = subprocess.Popen(
        [sys.executable, "-c", STAND_IN_KERNEL, str(port), str(site)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=dict(os.environ),
    )
    try:
        assert kernel.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        # The stand-in prints READY once its cell has run; never block on it past the deadline.
        while time.monotonic() < deadline and not any("READY" in line for line in seen):
            ready, _, _ = select.select([kernel.stdout], [], [], 1.0)
            if ready:
                line = kernel.stdout.readline()
                if not line:
                    break
                seen.append(line)
        assert any("READY" in line for line in seen), "".join(seen)
        assert fetch(port) == "hello from the daemon"
        daemon_pid = supervisor.Service("web").pid
        assert daemon_pid

        os.killpg(kernel.pid, signal.SIGINT)       # the notebook's Interrupt button
        time.sleep(0.5)
        os.killpg(kernel.pid, signal.SIGKILL)      # then a kernel restart
        kernel.wait(timeout=10)
        assert fetch(port) == "hello from the daemon"
        assert supervisor.Service("web").pid == daemon_pid  # same daemon, never restarted
    finally:
        if kernel.poll() is None:  # only on failure: never leave the stand-in kernel behind
            os.killpg(kernel.pid, signal.SIGKILL)
            kernel.wait(timeout=10)

    # The test's own shell is the new kernel: it re-adopts and can stop the daemon.
    status = ip.cell("%colabmagic status").value
    assert "web" in str(status) and str(daemon_pid) in str(status)
    out = ip.cell("%colabmagic stop web")
    assert "stopped: web" in out.stdout
    assert not probes.port_open(port)
    assert not procfs.is_running(daemon_pid)
    assert "no services running" in str(ip.cell("%colabmagic status").value)
    again = ip.cell("%colabmagic stop --all")
    assert "nothing was running" in again.stdout


def test_sigkill_of_supervised_daemon_restarts_it(ip, site):
    port = probes.free_port()
    svc = supervisor.start(web_spec(port, site), ready=lambda: probes.port_open(port), timeout=20)
    first = svc.pid
    assert first
    os.kill(first, signal.SIGKILL)
    assert supervisor.wait_restarted(svc, first, timeout=30)
    assert probes.wait_for(lambda: probes.port_open(port), 20)
    assert fetch(port) == "hello from the daemon"
    assert svc.restarts >= 1
    assert "restarting web" in "\n".join(svc.log_tail(50))
    status = str(ip.cell("%colabmagic status").value)
    assert "web" in status and "running" in status


def test_same_spec_is_reused_and_changed_spec_restarts(site):
    port = probes.free_port()
    spec = web_spec(port, site)
    svc = supervisor.start(spec, ready=lambda: probes.port_open(port), timeout=20)
    pid = svc.pid
    again = supervisor.start(spec, ready=lambda: probes.port_open(port), timeout=20)
    assert again.reused and again.pid == pid
    port2 = probes.free_port()
    changed = supervisor.start(web_spec(port2, site), ready=lambda: probes.port_open(port2), timeout=20)
    assert not changed.reused and changed.pid != pid
    assert not procfs.is_running(pid)
    assert not probes.port_open(port)


def test_record_pointing_at_foreign_pid_is_ignored_and_untouched(ip, cm_home):
    foreign = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        ident = procfs.ProcessIdentity.of(foreign.pid)
        assert ident is not None
        services = cm_home / "services"
        services.mkdir(exist_ok=True)
        # A keeper record whose pid now belongs to `sleep` (wrong start time and command line),
        # and a daemon record with the right pid and start time but another process group.
        (services / "ghost.json").write_text(json.dumps({
            "name": "ghost", "token": "ghost:1",
            "keeper": {"pid": foreign.pid, "start_time": ident.start_time - 1, "cmdline": ["python", "keeper.py"]},
            "spec": {"info": {}}, "started_at": time.time(),
        }))
        (services / "ghost.run.json").write_text(json.dumps({
            "status": "running",
            "child": {"pid": foreign.pid, "start_time": ident.start_time, "cmdline": [], "pgid": 1},
        }))
        status = ip.cell("%colabmagic status").value
        assert "ghost" not in str(status)
        ip.cell("%colabmagic stop --all")
        stopped = ip.cell("%colabmagic stop ghost", check=False)
        assert "no running service named 'ghost'" in stopped.output
        assert foreign.poll() is None and procfs.is_running(foreign.pid)
        assert not (services / "ghost.json").exists()  # the stale record is cleaned up
    finally:
        foreign.kill()
        foreign.wait()


def test_failed_start_reports_log_tail_and_leaves_nothing(ip):
    spec = supervisor.ServiceSpec(name="broken", argv=[sys.executable, "-c", "print('bad config line 3'); raise SystemExit(2)"])
    with pytest.raises(Exception) as err:
        supervisor.start(spec, ready=lambda: False, timeout=10)
    rendered = "\n".join(err.value._render_traceback_())
    assert "broken exited during start-up" in rendered
    assert "bad config line 3" in rendered
    assert supervisor.running() == []


def test_taken_port_names_its_holder_and_leaves_it_alone():
    port = probes.free_port()
    holder = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert probes.wait_for(lambda: probes.port_open(port), 10)
        with pytest.raises(Exception) as err:
            supervisor.check_port_free(port, "the test service")
        assert f"pid {holder.pid}" in str(err.value) and "http.server" in str(err.value)
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


def test_stop_leaves_no_zombies_and_sweeps_escaped_children(tmp_path):
    # A daemon whose child escapes its process group with setsid (as dbus-daemon may):
    # the per-start token in its environment still marks it as ours.
    script = tmp_path / "forker.py"
    script.write_text(textwrap.dedent("""
        import os, subprocess, sys, time
        subprocess.Popen(["setsid", "sleep", "300"])
        time.sleep(300)
    """))
    for _ in range(5):
        svc = supervisor.start(supervisor.ServiceSpec(name="forker", argv=[sys.executable, str(script)]),
                               ready=lambda: len(supervisor.Service("forker")._our_pids()) >= 2, timeout=20)
        ours = svc._our_pids()
        svc.stop()
        assert not [p for p in ours if procfs.is_running(p)]
    assert procfs.zombies_of(os.getpid()) == []


def test_one_keeper_runs_every_service_and_leaves_with_the_last(tmp_path):
    # Supervision costs one small process however many daemons run (the row "Supervision" measures it).
    script = tmp_path / "idle.py"
    script.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    names = ["one", "two", "three"]
    services = [supervisor.start(supervisor.ServiceSpec(name=n, argv=[sys.executable, str(script)], backoff_max=1.0),
                                 timeout=20) for n in names]
    keepers = {svc.keeper.pid for svc in services if svc.keeper}
    assert len(keepers) == 1
    keeper = procfs.ProcessIdentity.of(keepers.pop())
    assert keeper is not None
    assert procfs.ppid(keeper.pid) != os.getpid()  # not the kernel's child: a kernel restart does not reach it
    pids = {svc.name: svc.pid for svc in services}
    assert all(pids.values()) and len({procfs.pgid(p) for p in pids.values()}) == 3  # a group each

    services[0].stop()
    assert not procfs.is_running(pids["one"])
    # The others run on, still supervised: a killed daemon comes back under the same keeper.
    os.kill(pids["two"], signal.SIGKILL)
    assert supervisor.wait_restarted(services[1], pids["two"], timeout=30)
    assert services[1].keeper_alive() and services[2].pid == pids["three"]
    assert [s.name for s in supervisor.running()] == ["three", "two"]

    services[1].stop()
    services[2].stop()
    assert probes.wait_for(lambda: not keeper.alive(), 10), "the keeper outlived the last service"
    assert supervisor.running() == []
    assert procfs.zombies_of(os.getpid()) == []


def test_killed_keeper_leaves_daemons_running_and_a_new_start_supervises_again(tmp_path):
    script = tmp_path / "idle.py"
    script.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    spec = supervisor.ServiceSpec(name="idle", argv=[sys.executable, str(script)])
    svc = supervisor.start(spec, timeout=20)
    daemon = svc.child
    old_keeper = svc.keeper
    assert daemon is not None and old_keeper is not None
    os.kill(old_keeper.pid, signal.SIGKILL)
    assert probes.wait_for(lambda: not svc.keeper_alive(), 10)
    assert daemon.alive() and svc.status == "unsupervised"  # never killed with its keeper
    again = supervisor.start(spec, timeout=20)  # what a magic's ensure() does: stop it, start it supervised
    try:
        assert not again.reused and not daemon.alive()
        assert again.keeper_alive() and again.keeper.pid != old_keeper.pid
    finally:
        again.stop()
