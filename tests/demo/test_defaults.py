"""The quickstart's embedded defaults: what start() picks off and on hosted Colab, and that stop() ends it all."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from colabmagic.demo import defaults
from colabmagic.demo.webserver import FileServer, make_file
from colabmagic.system import paths, probes


def test_off_colab_the_magics_point_at_running_loopback_stand_ins(ip: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLABMAGIC_OFFLINE")
    ip.cell("from colabmagic.demo import defaults")
    demo = ip.cell(f"demo = defaults.start({str(tmp_path / 'demo')!r}); demo").value
    try:
        assert not demo.hosted and demo.provider == "ssh"
        assert paths.offline()  # the notebook run by hand off Colab contacts nothing beyond the machine
        tunnel = ip.magics_manager.registry["TunnelMagics"]
        assert (tunnel.relay, tunnel.relay_host_key) == (demo.relay.relay, demo.relay.host_key)
        assert probes.banner(demo.relay.port, b"SSH-")
        drive = ip.magics_manager.registry["DriveMagics"]
        assert (drive.backend, drive.remote) == ("rclone", str(demo.drive_remote))
        with urllib.request.urlopen(demo.file_url, timeout=10) as resp:
            assert hashlib.sha256(resp.read()).hexdigest() == demo.file_sha256
        assert demo.magnet and "tr=http%3A%2F%2F127.0.0.1%3A" in demo.magnet
        app = demo.web_app()
        with urllib.request.urlopen(f"http://127.0.0.1:{app}/", timeout=10) as resp:
            assert b"Hello from a tiny web app" in resp.read()
        swarm_pids = [p.pid for p in demo._swarm._procs]
        assert swarm_pids
    finally:
        stopped = demo.stop()
    assert {"web app", "web server", "swarm", "relay"} <= set(stopped)
    assert not probes.port_open(demo.relay.port) and not probes.port_open(app)
    assert all(not Path(f"/proc/{pid}").exists() for pid in swarm_pids)


def test_on_hosted_colab_it_uses_real_providers_and_no_bittorrent(ip: Any, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-standin")
    monkeypatch.setenv("TBE_EPHEM_CREDS_ADDR", "127.0.0.1:9")  # what only hosted Colab has
    www = tmp_path / "www"
    www.mkdir()
    digest = make_file(str(www / "README.rst"), 10_000, seed=3)
    with FileServer(str(www)) as server:  # stands in for the public file (the test stays on loopback)
        monkeypatch.setattr(defaults, "HOSTED_FILE_URL", server.url("README.rst"))
        ip.cell("from colabmagic.demo import defaults")
        demo = ip.cell(f"demo = defaults.start({str(tmp_path / 'demo')!r})").value or ip.user_ns["demo"]
    assert demo.hosted and demo.provider == "cloudflared"
    assert demo.magnet is None  # Colab's terms forbid P2P on its runtimes
    assert demo.file_sha256 == digest  # taken from an independent fetch of the source
    assert ip.magics_manager.registry["DriveMagics"].backend == "colab"
    assert ip.magics_manager.registry["TunnelMagics"].relay == ""
    assert demo.drive_files() == [] and demo.stop() == []
