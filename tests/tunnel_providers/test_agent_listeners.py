"""JupyterLab and every provider agent listen on loopback only (their admin/API/metrics ports).

JupyterLab is the real one; the agents are the stand-ins, which bind where colabmagic's
generated config tells them (frpc webServer.addr, ngrok web_addr, cloudflared --metrics).
Every listening socket of each service's process tree must be on 127.0.0.1 or ::1.
"""

from __future__ import annotations

from typing import Dict, List, Set

import pytest
from support.standin_client import Frps, Page, standin

from colabmagic.services import tunnels
from colabmagic.system import procfs, supervisor


def _tree(root: int) -> Set[int]:
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid in procfs.pids():
            if pid not in found and procfs.ppid(pid) in found:
                found.add(pid)
                changed = True
    return found


def _listeners_by_service() -> Dict[str, List[str]]:
    owners = procfs.socket_owners()
    trees = {s.name: _tree(s.pid) for s in supervisor.running() if s.pid}
    found: Dict[str, List[str]] = {name: [] for name in trees}
    for address, port, inode in procfs.listeners():
        for name, tree in trees.items():
            if owners.get(inode) in tree:
                found[name].append(f"{address}:{port}")
    return found


def test_jupyterlab_and_agents_listen_on_loopback_only(ip, page: Page, frps: Frps,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRP_TOKEN", frps.token)
    monkeypatch.setenv("NGROK_AUTHTOKEN", "2ngrokStandInAuthtoken_0123456789abcdef")
    for setting, name in (("frpc_path", "frpc"), ("ngrok_path", "ngrok"), ("cloudflared_path", "cloudflared")):
        ip.cell(f"%config TunnelMagics.{setting} = '{standin(name)}'")
    ip.cell("%tunnel jupyter --via cloudflared")
    ip.cell(f"%tunnel {page.port} --via ngrok --name web-ngrok")
    ip.cell(f"%tunnel {page.port} --via frp --server {frps.server} --proto tcp --name web-frp")
    found = _listeners_by_service()
    print(found)
    wanted = {"jupyter", "tunnel-jupyter", "tunnel-web-ngrok", "tunnel-web-frp"}
    assert wanted <= set(found), sorted(found)
    for name in wanted:
        assert found[name], f"{name} has no listener to check"
    jupyter_port = supervisor.adopt("jupyter").info["port"]
    assert f"127.0.0.1:{jupyter_port}" in found["jupyter"]
    off = {name: [a for a in addrs if a.rsplit(":", 1)[0] not in ("127.0.0.1", "::1")]
           for name, addrs in found.items()}
    assert not any(off.values()), off
    tunnels.stop_all()
