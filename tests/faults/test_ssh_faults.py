"""Faults on the SSH path: sshd and the tunnel agent SIGKILLed, the relay restarted, a half-open link."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from support.fault_helpers import HalfOpenProxy, login_ok, relay_args, time_until

from colabmagic.demo import relay as demo_relay
from colabmagic.system import supervisor


def _tunnel(ip, relay, client_key, **kw):
    pub = Path(f"{client_key}.pub").read_text().strip()
    ip.cell(f"t = %tunnel ssh {relay_args(relay, **kw)} --key '{pub}'")
    return ip.user_ns["t"]


def test_sigkill_sshd_and_agent_and_relay_restart(ip, relay, client_key, tmp_path, figures):
    t = _tunnel(ip, relay, client_key)
    assert login_ok(t, client_key, tmp_path)

    for name, what in (("sshd", "SIGKILL of colabmagic's sshd"), ("tunnel-ssh", "SIGKILL of the tunnel agent (ssh)")):
        service = supervisor.adopt(name)
        assert service is not None and service.pid
        old = service.pid
        os.kill(old, signal.SIGKILL)
        ok, took = time_until(lambda: login_ok(t, client_key, tmp_path), timeout=90, interval=0.5)
        figures.fault(what, ok, took, "SSH login through the relay works again")
        assert ok, service.log_tail()
        assert supervisor.adopt(name).pid != old and supervisor.adopt(name).restarts >= 1

    demo_relay.stop()
    assert not login_ok(t, client_key, tmp_path)
    demo_relay.start(folder=relay.folder)  # same port and host key, like a rebooted server
    ok, took = time_until(lambda: login_ok(t, client_key, tmp_path), timeout=90, interval=0.5)
    figures.fault("relay sshd restarted", ok, took, "the tunnel reconnects by itself")
    assert ok, supervisor.adopt("tunnel-ssh").log_tail()


def test_half_open_link_detected_by_keepalives(ip, relay, client_key, tmp_path, figures):
    proxy = HalfOpenProxy(relay.port)
    try:
        t = _tunnel(ip, relay, client_key, port=proxy.port)
        assert login_ok(t, client_key, tmp_path)
        agent = supervisor.adopt("tunnel-ssh")
        old = agent.pid
        assert proxy.freeze() >= 1  # the agent's link now swallows every byte, and nothing closes
        assert not login_ok(t, client_key, tmp_path, timeout=8)
        ok, took = time_until(lambda: login_ok(t, client_key, tmp_path, timeout=10), timeout=150, interval=1)
        figures.fault("half-open link to the relay", ok, took, "keepalives end the dead link; a new agent logs in")
        assert ok, agent.log_tail()
        assert supervisor.adopt("tunnel-ssh").pid != old
    finally:
        proxy.close()
