"""Every way a login could cross a public tunnel in clear, and every control port, is refused.

One line each (naming the safe way), nothing started; counted in the summary as "cleartext
exposures refused". aria2's RPC is a real aria2c; the rest are refused before anything starts.
"""

from __future__ import annotations

from support.fault_helpers import relay_args

from colabmagic.services.tunnels import exposure
from colabmagic.system import probes, supervisor


def test_cleartext_logins_and_control_ports_are_refused(ip, cm_home, relay, tmp_path, figures):
    ssh = relay_args(relay).rsplit(" --remote-port", 1)[0]
    (tmp_path / "dl").mkdir()
    ip.cell(f"%config Aria2Magics.download_dir = {str(tmp_path / 'dl')!r}")
    rpc = probes.free_port()
    ip.cell(f"%config Aria2Magics.rpc_port = {rpc}")
    ip.cell("%aria2 start")
    lines = [
        "%tunnel jupyter --via frp --server 127.0.0.1:7000 --domain lab.example.test",
        "%tunnel jupyter --via frp --server 127.0.0.1:7000 --proto tcp",
        f"%tunnel jupyter {ssh}",
        "%tunnel jupyter --via ngrok --proto tcp",
        "%vnc start --via ngrok",
        "%vnc start --via frp",
        "%vnc start --via ssh",
        "%vnc start --web --via frp",
        "%vnc start --web --via ssh",
        "%tunnel 5901 --via cloudflared --proto tcp",
        f"%tunnel {rpc} --via cloudflared",
    ]
    ip.cell("%config TunnelMagics.frp_server = '127.0.0.1:7000'")
    ip.cell(f"%config TunnelMagics.relay = {relay.relay!r}")
    ip.cell(f"%config TunnelMagics.relay_host_key = {relay.host_key!r}")
    ip.cell(f"%config TunnelMagics.relay_key_file = {str(relay.client_key)!r}")
    running = sorted(s.name for s in supervisor.running())
    refused, problems, messages = 0, [], []
    try:
        for line in lines:
            before = exposure.REFUSED["count"]
            c = ip.cell(line, check=False)
            message = str(c.error or "")
            messages.append(message)
            shown = [x for x in c.output.splitlines() if x.strip()]
            if c.error is None or "refused" not in message or "\n" in message or len(shown) > 1:
                problems.append(f"{line}: {message or 'accepted'}")
            elif sorted(s.name for s in supervisor.running()) != running:
                problems.append(f"{line}: something was started")
            elif exposure.REFUSED["count"] == before + 1:
                refused += 1
    finally:
        for trait in ("frp_server", "relay", "relay_host_key", "relay_key_file"):
            ip.cell(f"%config TunnelMagics.{trait} = ''")
        ip.cell("%aria2 stop")
    figures.cleartext(len(lines), refused)
    assert "aria2's RPC" in messages[-1] and "raw VNC" in messages[-2], messages[-2:]
    assert not problems and refused == len(lines), problems
