"""%aria2 refuses bad input without adding anything, keeps its RPC secret private, and honours offline mode."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, List

import pytest
from support.aria2_helpers import sha256

from colabmagic.errors import BadInputError
from colabmagic.services import aria2 as service
from colabmagic.services.aria2 import daemon as daemon_module
from colabmagic.system import procfs, secrets


def nothing_queued() -> bool:
    d = service.current()
    return (
        d._call("aria2.tellActive", ["gid"]) == []
        and d._call("aria2.tellWaiting", 0, 100, ["gid"]) == []
        and d._call("aria2.tellStopped", 0, 100, ["gid"]) == []
    )


def test_bad_input_is_refused_and_nothing_is_added(
    aip: Any, serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    url = serve().url("small.bin")
    aip.cell("%aria2 start")
    lines = [
        '%aria2 add "magnet:?xt=urn:btih:1234&dn=x"',
        '%aria2 add "magnet:?dn=no-hash"',
        "%aria2 add file:///etc/passwd",
        "%aria2 add javascript:alert(1)",
        "%aria2 add gopher://127.0.0.1/x",
        f"%aria2 add {url} --out ../../x",
        f"%aria2 add {url} --out /tmp/absolute-name",
        f'%aria2 add {url} --header "NoColonHere"',
        f'%aria2 add {url} --header ": empty-name"',
        f'%aria2 add "http://127.0.0.1:1/x $(touch {sentinel})"',
        f'%aria2 add "http://127.0.0.1:1/x;touch {sentinel}"',
        f"%aria2 add {url} file:///etc/passwd",  # one bad source: the good one is not added either
        f"%aria2 add {url} {url} --out both.bin",
        f"%aria2 add {url} --seed-time -1",
        "%aria2 add /no/such/file.torrent",
        "%aria2 status not-a-gid",
    ]
    for line in lines:
        c = aip.cell(line, check=False)
        assert c.error is not None, f"accepted: {line}"
        assert isinstance(c.error, BadInputError), f"{line}: {c.error!r}"
        assert "Traceback" not in c.output
    daemon = service.current()
    api_cases: List[Any] = [
        dict(uris=[url], headers=["X-Test: a\r\nX-Injected: 1"]),
        dict(uris=[url], headers=["X-Test: a\nb"]),
        dict(uris=[url], headers=["X-Test: a\x00b"]),
        dict(uris=[url], out="a\x00b"),
        dict(uris=[url], out=".."),
        dict(uris=[url + "\n--dir=/"]),
        dict(uris=[url], user_agent="x\r\nX-Injected: 1"),
        dict(uris=["magnet:?xt=urn:btih:" + "z" * 40]),
    ]
    for case in api_cases:
        with pytest.raises(BadInputError):
            daemon.add(**case)
    assert nothing_queued()
    assert not sentinel.exists()


def test_shell_metacharacters_are_plain_data(aip: Any, serve: Any, payloads: Any, tmp_path: Path,
                                             dl_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    server = serve()
    _, digest, _ = payloads["small.bin"]
    name = "$(touch SENTINEL);`touch SENTINEL`"
    d = service.ensure(service.Aria2Config(download_dir=str(dl_dir))).add(
        [server.url("small.bin")], out=name, headers=[f"X-Note: $(touch {sentinel})"],
        user_agent=f"ua `touch {sentinel}`",
    )[0]
    done = service.current().wait([d], timeout=60)[0]
    assert done.path == str(dl_dir / name)
    assert sha256(done.path) == digest
    assert not sentinel.exists()
    assert any(f"$(touch {sentinel})" == r.headers.get("X-Note") for r in server.requests)


def _rpc(port: int, params: List[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": "t", "method": "aria2.getVersion", "params": params}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/jsonrpc", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())


def test_rpc_needs_the_secret_which_stays_private(aip: Any, serve: Any, cm_home: Path) -> None:
    outputs = []
    c = aip.cell("%aria2 start")
    outputs.append(c.output + repr(c.value) + c.value._repr_html_())
    daemon = service.current()
    secret = secrets.load(daemon_module.SECRET_NAME)
    assert secret is not None and len(secret.reveal()) >= 24
    value = secret.reveal()

    assert "Unauthorized" in json.dumps(_rpc(daemon.port, []))
    assert "Unauthorized" in json.dumps(_rpc(daemon.port, ["token:wrong"]))
    assert "version" in _rpc(daemon.port, [f"token:{value}"])["result"]

    rpc_sockets = [(ip, port) for ip, port, _ in procfs.listeners() if port == daemon.port]
    assert rpc_sockets and all(ip in ("127.0.0.1", "::1") for ip, _ in rpc_sockets), rpc_sockets

    server = serve()
    for line in (f"%aria2 add {server.url('small.bin')} --wait", "%aria2 status", "_colabmagic.aria2",
                 "%colabmagic status", "%config Aria2Magics"):
        c = aip.cell(line)
        outputs.append(c.output + repr(c.value))
        if hasattr(c.value, "_repr_html_"):
            outputs.append(c.value._repr_html_())
    for text in outputs:
        assert value not in text
    for pid in procfs.pids():
        assert value not in " ".join(procfs.cmdline(pid))
    assert value not in daemon.service.log.read_text()
    assert value in aip.cell("%aria2 rpc").stdout  # the one place it is shown, on request

    conf = cm_home / "aria2" / "aria2.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert f"rpc-secret={value}" in conf.read_text()
    assert "rpc-listen-all=false" in conf.read_text()
    assert stat.S_IMODE(secrets.secret_path(daemon_module.SECRET_NAME).stat().st_mode) == 0o600


def test_offline_turns_off_outside_contact(aip: Any, cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trackers = cm_home / "aria2" / "trackers.txt"
    trackers.parent.mkdir(parents=True, exist_ok=True)
    trackers.write_text("udp://tracker.invalid:1337/announce\n")
    aip.cell("%config Aria2Magics.dht = True")
    aip.cell("%config Aria2Magics.lpd = True")
    aip.cell("%aria2 start")
    conf = (cm_home / "aria2" / "aria2.conf").read_text()
    for line in ("enable-dht=false", "enable-dht6=false", "bt-enable-lpd=false", "bt-tracker=\n"):
        assert line in conf
    c = aip.cell("%aria2 trackers --update", check=False)
    assert isinstance(c.error, BadInputError) and "offline" in str(c.error)
    assert "udp://tracker.invalid:1337/announce" in str(aip.cell("%aria2 trackers").value)
    # The same settings with offline mode off would use DHT, LPD and the cached list (config only).
    monkeypatch.delenv("COLABMAGIC_OFFLINE")
    opts = dict(daemon_module.options_for(service.Aria2Config(dht=True, lpd=True), 6800))
    assert opts["enable-dht"] == "true" and opts["bt-enable-lpd"] == "true"
    assert opts["bt-tracker"] == "udp://tracker.invalid:1337/announce"


def test_bittorrent_on_hosted_colab_needs_opt_in(aip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test-runtime")  # how hosted Colab is recognised
    monkeypatch.setenv("TBE_EPHEM_CREDS_ADDR", "127.0.0.1:9")  # what only hosted Colab has
    magnet = "magnet:?xt=urn:btih:" + "ab" * 20 + "&tr=http%3A%2F%2F127.0.0.1%3A9%2Fannounce"
    refused = aip.cell(f'%aria2 add "{magnet}"', check=False)
    assert isinstance(refused.error, BadInputError)
    assert "Colab" in str(refused.error) and "allow_bittorrent_on_colab" in str(refused.error)
    assert nothing_queued()
    opts = dict(daemon_module.options_for(service.Aria2Config(), 6800))
    assert opts["enable-dht"] == "false" and opts["follow-torrent"] == "false"
    aip.cell("%config Aria2Magics.allow_bittorrent_on_colab = True")
    c = aip.cell(f'%aria2 add "{magnet}"')
    assert "terms" in c.stdout
    assert c.value.gid
    aip.cell("%aria2 remove --all")
    assert os.environ.get("COLABMAGIC_OFFLINE") == "1"


def test_settings_cannot_inject_config_lines(aip: Any, cm_home: Path) -> None:
    aip.cell('%config Aria2Magics.trackers = ["http://127.0.0.1:9/announce\\nrpc-listen-all=true"]')
    c = aip.cell("%aria2 start", check=False)
    assert isinstance(c.error, BadInputError)
    aip.cell("%config Aria2Magics.trackers = []")
    aip.cell("%config Aria2Magics.max_download_limit = '1M\\nrpc-listen-all=true'")
    assert isinstance(aip.cell("%aria2 start", check=False).error, BadInputError)
    assert service.current() is None
    with pytest.raises(BadInputError):
        service.start(service.Aria2Config(download_dir="/tmp/x\nrpc-listen-all=true"))
    assert service.current() is None


def test_tracker_list_update_and_cache(tmp_path: Path, cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from colabmagic.demo.webserver import FileServer

    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "trackers.txt").write_text(
        "udp://tracker.one.invalid:1337/announce\n\nhttp://tracker.two.invalid/announce\nnot a tracker\n"
    )
    with FileServer(str(tmp_path / "list")) as server:
        with pytest.raises(BadInputError, match="offline"):
            service.update_trackers(server.url("trackers.txt"))
        monkeypatch.delenv("COLABMAGIC_OFFLINE")  # no daemon runs here: the only contact is loopback
        found = service.update_trackers(server.url("trackers.txt"))
    assert found == ["udp://tracker.one.invalid:1337/announce", "http://tracker.two.invalid/announce"]
    assert service.cached_trackers() == found
    assert stat.S_IMODE((cm_home / "aria2" / "trackers.txt").stat().st_mode) == 0o600


def _cors_header(port: int) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": "x", "method": "aria2.getVersion", "params": []}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/jsonrpc", data=body,
                                     headers={"Origin": "https://evil.example", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.headers.get("Access-Control-Allow-Origin")
    except urllib.error.HTTPError as exc:  # no secret: 400, still with aria2's headers
        return exc.headers.get("Access-Control-Allow-Origin")


def test_rpc_allows_other_origins_only_when_asked(aip: Any) -> None:
    from colabmagic.system import supervisor

    aip.cell("%aria2 start")
    port = int(supervisor.adopt("aria2").info["port"])
    assert _cors_header(port) is None  # a web page elsewhere cannot read the RPC's answers
    aip.cell("%config Aria2Magics.rpc_allow_origin_all = True")
    aip.cell("%aria2 start")
    port = int(supervisor.adopt("aria2").info["port"])
    assert _cors_header(port) == "*"
    aip.cell("%aria2 stop")
