"""Logins only over an encrypted path, control ports only with --force, frps verified with a CA file.

The refusals happen before anything starts (no JupyterLab, no desktop, no agent). The frp
tests run the frps stand-in with a certificate from a CA made here; frpc (stand-in, following
frp v0.69.0's pkg/transport/tls.go) verifies it only when colabmagic writes trustedCaFile.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.standin_client import Frps, Page, standin, tcp_fetch_until

from colabmagic.services import tunnels
from colabmagic.services.tunnels import exposure
from colabmagic.system import probes, supervisor


def _refused(cell: Any, *words: str) -> str:
    error = cell.error
    assert error is not None
    message = str(error)
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for word in words:
        assert word in message, message
    assert not tunnels.services() and supervisor.adopt("jupyter") is None
    return message


@pytest.mark.parametrize("line", [
    "%tunnel jupyter --via frp --server 127.0.0.1:7000 --domain lab.example.test",
    "%tunnel jupyter --via frp --server 127.0.0.1:7000 --proto tcp",
    "%tunnel jupyter --via ssh --relay me@127.0.0.1:22 --relay-host-key 'ssh-ed25519 AAAA'",
    "%tunnel jupyter --via ngrok --proto tcp",
])
def test_jupyter_token_in_clear_is_refused_in_one_line(ip, line: str) -> None:
    before = exposure.REFUSED["count"]
    c = ip.cell(line, check=False)
    _refused(c, "refused", "JupyterLab's login token", "cloudflared", "ssh -L", "--insecure")
    assert exposure.REFUSED["count"] == before + 1


@pytest.mark.parametrize("line, what", [
    ("%vnc start --via ngrok", "raw VNC"),
    ("%vnc start --via frp --server 127.0.0.1:7000", "raw VNC"),
    ("%vnc start --web --via frp --server 127.0.0.1:7000", "noVNC page"),
    ("%vnc start --web --via ssh --relay me@127.0.0.1:22 --relay-host-key 'ssh-ed25519 AAAA'", "noVNC page"),
])
def test_vnc_in_clear_is_refused_before_anything_starts(ip, line: str, what: str) -> None:
    if "--relay" in line:  # %vnc takes the relay from TunnelMagics
        ip.cell("%config TunnelMagics.relay = 'me@127.0.0.1:22'")
        ip.cell("%config TunnelMagics.relay_host_key = 'ssh-ed25519 AAAA'")
        line = line.split(" --relay")[0]
    if "--server" in line:
        ip.cell("%config TunnelMagics.frp_server = '127.0.0.1:7000'")
        line = line.split(" --server")[0]
    try:
        c = ip.cell(line, check=False)
    finally:
        for trait in ("relay", "relay_host_key", "frp_server"):
            ip.cell(f"%config TunnelMagics.{trait} = ''")
    _refused(c, "refused", what, "--insecure")
    assert supervisor.adopt("vnc-xserver") is None


def test_insecure_says_why_it_is_unsafe(capsys: pytest.CaptureFixture) -> None:
    exposure.require_encrypted("JupyterLab's login token", "frp", "http", True, "x")
    out = capsys.readouterr().out
    assert "--insecure" in out and "in clear" in out and "anyone on the path" in out
    exposure.require_encrypted("JupyterLab's login token", "cloudflared", "http", False, "x")
    exposure.require_encrypted("JupyterLab's login token", "ngrok", "http", False, "x")


def test_raw_vnc_port_needs_force(ip, safe_home: Path) -> None:
    ip.cell(f"%config TunnelMagics.cloudflared_path = '{standin('cloudflared')}'")
    c = ip.cell("%tunnel 5901 --via cloudflared --proto tcp", check=False)
    _refused(c, "refused", "port 5901", "raw VNC", "--force")
    c = ip.cell("%tunnel 5901 --via cloudflared --proto tcp --force")
    assert "warning (--force): port 5901 is raw VNC" in c.stdout
    assert tunnels.get("5901") is not None
    tunnels.stop("5901")


@pytest.mark.parametrize("service, what", [
    (SimpleNamespace(name="aria2", info={"group": "aria2", "port": 46800}), "aria2's RPC"),
    (SimpleNamespace(name="drive-rclone", info={"rc_port": 46800}), "rclone's remote-control"),
    (SimpleNamespace(name="vnc-web", info={"web_port": 46800}), "noVNC"),
    (SimpleNamespace(name="jupyter", info={"port": 46800}), "JupyterLab"),
])
def test_control_ports_are_named_and_refused(ip, monkeypatch: pytest.MonkeyPatch, service: object, what: str) -> None:
    with monkeypatch.context() as m:  # undone before the fixtures' teardown lists real services
        m.setattr(supervisor, "running", lambda: [service])
        c = ip.cell("%tunnel 46800 --via cloudflared", check=False)
    _refused(c, "port 46800", what, "--force")


# --- frp: the server verified with the user's CA ------------------------------------------------

def _ca_and_server_cert(folder: Path, name: str) -> tuple:
    def run(*argv: str) -> None:
        subprocess.run(list(argv), check=True, capture_output=True)

    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ext = folder / "ext.cnf"
    ext.write_text(f"subjectAltName=DNS:{name}\n")
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@pytest.fixture
def frps_with_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ip) -> object:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca, cert, key = _ca_and_server_cert(folder, "frps.example.test")
    server = Frps(tmp_path)
    server.config.write_text(server.config.read_text()
                             + f'transport.tls.certFile = "{cert}"\ntransport.tls.keyFile = "{key}"\n')
    server.start()
    monkeypatch.setenv("FRP_TOKEN", server.token)
    ip.cell(f"%config TunnelMagics.frpc_path = '{standin('frpc')}'")
    yield SimpleNamespace(server=server, ca=ca, other_ca=_ca_and_server_cert(tmp_path, "other.test")[0])
    server.stop()


def test_frp_with_ca_file_verifies_the_server(ip, page: Page, frps_with_cert: object) -> None:
    f = frps_with_cert
    remote = probes.free_port()
    c = ip.cell(f"%tunnel {page.port} --via frp --server {f.server.server} --proto tcp --remote-port {remote} "
                f"--frp-ca-file {f.ca} --frp-server-name frps.example.test")
    assert "not verified" not in c.stdout
    assert page.marker in tcp_fetch_until("127.0.0.1", remote, page.marker)
    text = Path(supervisor.adopt(tunnels.service_name(c.value.name)).info["config_file"]).read_text()
    assert f'transport.tls.trustedCaFile = "{f.ca}"' in text
    assert 'transport.tls.serverName = "frps.example.test"' in text


def test_frp_with_the_wrong_ca_is_a_clear_tls_error(ip, page: Page, frps_with_cert: object) -> None:
    f = frps_with_cert
    ip.cell("%config TunnelMagics.timeout = 6")
    try:
        c = ip.cell(f"%tunnel {page.port} --via frp --server {f.server.server} --proto tcp "
                    f"--frp-ca-file {f.other_ca} --frp-server-name frps.example.test", check=False)
    finally:
        ip.cell("%config TunnelMagics.timeout = 60.0")
    assert c.error is not None
    assert "failed TLS verification" in str(c.error) and "--frp-ca-file" in str(c.error)
    assert not tunnels.services()


def test_frp_without_ca_warns_once(ip, page: Page, frps_with_cert: object) -> None:
    f = frps_with_cert
    line = f"%tunnel {page.port} --via frp --server {f.server.server} --proto tcp"
    first = ip.cell(line)
    assert first.stdout.count("is not verified") == 1 and "frp_ca_file" in first.stdout
    tunnels.stop(first.value.name)
    second = ip.cell(line)
    assert "is not verified" not in second.stdout


@pytest.mark.parametrize("line, words", [
    # what frp v0.69.0 client/service.go:319 logs for each failed login attempt
    ("connect to server error: token in login doesn't match token from configuration",
     ("refused the login", "FRP_TOKEN")),
    ("connect to server error: tls: failed to verify certificate: x509: certificate signed by unknown authority",
     ("failed TLS verification", "--frp-ca-file")),
    ("connect to server error: dial tcp 127.0.0.1:7000: connect: connection refused", ("cannot be reached",)),
])
def test_frp_explains_what_real_frpc_logs(line: str, words: tuple) -> None:
    from colabmagic.errors import ServiceError
    from colabmagic.services.tunnels import frp

    config = tunnels.TunnelConfig(name="t", local_port=8000, proto="tcp", options={"server": "frps.test:7000"})
    details = ["2026-12-02 18:00:00.000 [I] [client/service.go:308] try to connect to server...",
               f"2026-12-02 18:00:00.100 [W] [client/service.go:319] {line}"]
    message = frp.PROVIDER.explain(config, ServiceError("tunnel 't' did not come up", details=details)).message
    assert len(message.splitlines()) == 1
    for word in words:
        assert word in message, message
