"""%tunnel PORT and %tunnel jupyter through a real OpenSSH relay on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from colabmagic.services import jupyter
from colabmagic.system import probes, supervisor


def _get(url: str, token: str = "") -> tuple:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def web_server(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>hello through the relay</h1>\n")
    port = probes.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert probes.wait_for(lambda: probes.port_open(port), 30)
    yield port
    proc.terminate()
    proc.wait(10)


def test_port_through_relay_serves_the_page(ip, relay, relay_args, web_server):
    remote = probes.free_port()
    c = ip.cell(f"t = %tunnel {web_server} {relay_args(relay, remote)}")
    t = ip.user_ns["t"]
    assert (t.name, t.local_port, t.public_host, t.public_port) == (str(web_server), web_server, "127.0.0.1", remote)
    assert t.public_url == f"http://127.0.0.1:{remote}/" and t.public_url in c.stdout
    status, body = _get(t.public_url)
    assert status == 200 and b"hello through the relay" in body

    ip.cell(f"%tunnel stop {web_server}")
    assert not probes.wait_for(lambda: _get(t.public_url)[0] == 200, timeout=1)
    assert ip.cell("%tunnel list").value.rows == []


def test_jupyter_through_relay_needs_its_token(ip, relay, relay_args, tmp_path):
    remote = probes.free_port()
    # the relay's port is plain http: the token would cross in clear, so refused without --insecure
    refused = ip.cell(f"%tunnel jupyter {relay_args(relay, remote)}", check=False)
    assert refused.error is not None and len(str(refused.error).splitlines()) == 1
    assert "--insecure" in str(refused.error) and supervisor.adopt("jupyter") is None
    c = ip.cell(f"t = %tunnel jupyter {relay_args(relay, remote)} --insecure")
    assert "in clear" in c.stdout
    t = ip.user_ns["t"]
    assert (t.name, t.provider, t.proto, t.public_url) == ("jupyter", "ssh", "http", f"http://127.0.0.1:{remote}/")
    token = jupyter.token_file().read_text()
    assert token and token not in c.output  # not shown unless asked for
    assert oct(jupyter.token_file().stat().st_mode & 0o777) == "0o600"
    base = f"http://127.0.0.1:{remote}"
    status, body = _get(f"{base}/api/contents", token)
    assert status == 200 and "content" in json.loads(body)
    assert _get(f"{base}/api/contents")[0] == 403
    assert _get(f"{base}/api/contents", "wrong-token")[0] == 403
    lab = supervisor.adopt("jupyter")
    assert lab is not None and token not in " ".join(_cmdline(lab.pid)) and token not in lab.log.read_text()

    shown = ip.cell(f"%tunnel jupyter {relay_args(relay, remote)} --insecure --show-token")
    assert f"token={token}" in shown.stdout and "reused" in shown.stdout

    ip.cell("%tunnel stop jupyter")
    assert supervisor.adopt("jupyter") is None and supervisor.adopt("tunnel-jupyter") is None


def _cmdline(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
