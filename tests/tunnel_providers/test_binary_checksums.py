"""Pinned provider binaries (binaries.PINS): a download is accepted only when its sha256 is the pinned one.

A loopback HTTP server serves a made-up frp release archive; the pin table is patched in the test
only. Nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

from colabmagic.services.tunnels import binaries


def _archive() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        body = b"#!/bin/sh\necho fake frpc\n"
        info = tarfile.TarInfo("frp_9.9.9_linux_amd64/frpc")
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


ARCHIVE = _archive()


@pytest.fixture
def release_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(ARCHIVE)))
            self.end_headers()
            self.wfile.write(ARCHIVE)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/frp_{{version}}_linux_{{arch}}.tar.gz"
    server.shutdown()


def _pin(monkeypatch: pytest.MonkeyPatch, url: str, sha: str) -> None:
    monkeypatch.delenv("COLABMAGIC_OFFLINE", raising=False)
    monkeypatch.setattr(binaries, "_arch", lambda: "amd64")
    monkeypatch.setattr(binaries.shutil, "which", lambda *_a, **_k: None)
    sums = {"amd64": sha} if sha else {}
    monkeypatch.setitem(binaries.PINS, "frpc", binaries.Pin("9.9.9", url, sums, "test"))


def test_matching_pin_is_installed(release_server: str, monkeypatch: pytest.MonkeyPatch, safe_home: Path) -> None:
    _pin(monkeypatch, release_server, hashlib.sha256(ARCHIVE).hexdigest())
    path = Path(binaries.resolve("frpc"))
    assert path == safe_home / "bin" / "frpc" and b"fake frpc" in path.read_bytes()


def test_mismatched_checksum_is_refused(release_server: str, monkeypatch: pytest.MonkeyPatch, safe_home: Path) -> None:
    _pin(monkeypatch, release_server, "ab" * 32)
    with pytest.raises(binaries.MissingBinaryError) as err:
        binaries.resolve("frpc")
    message = str(err.value)
    assert "checksum mismatch" in message and "TunnelMagics.frpc_path" in message and len(message.splitlines()) == 1
    assert not (safe_home / "bin" / "frpc").exists()


def test_missing_pin_is_refused_before_any_download(release_server: str, monkeypatch: pytest.MonkeyPatch,
                                                    safe_home: Path) -> None:
    _pin(monkeypatch, release_server, "")
    fetched = []
    monkeypatch.setattr(binaries, "_get", lambda url: fetched.append(url) or ARCHIVE)
    with pytest.raises(binaries.MissingBinaryError, match="no pinned sha256.*TunnelMagics.frpc_path"):
        binaries.resolve("frpc")
    assert not fetched and not (safe_home / "bin" / "frpc").exists()


def test_ngrok_through_pyngrok_is_refused_without_a_pin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pyngrok import installer

    called = []
    monkeypatch.setattr(installer, "install_ngrok", lambda *a, **k: called.append(a))
    monkeypatch.setattr(binaries, "_arch", lambda: "amd64")
    with pytest.raises(binaries.MissingBinaryError, match="TunnelMagics.ngrok_path"):
        binaries._download_ngrok(tmp_path / "ngrok", None)
    assert not called


def test_ngrok_from_pyngrok_must_match_its_pin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pyngrok import installer

    body = b"#!/bin/sh\necho fake ngrok\n"
    monkeypatch.setattr(installer, "install_ngrok", lambda path, **k: Path(path).write_bytes(body))
    monkeypatch.setattr(binaries, "_arch", lambda: "amd64")
    monkeypatch.setitem(binaries.PINS, "ngrok", binaries.Pin("3", "", {"amd64": "cd" * 32}, "test"))
    with pytest.raises(ValueError, match="checksum mismatch"):
        binaries._download_ngrok(tmp_path / "ngrok", None)
    assert not (tmp_path / "ngrok").exists()
    monkeypatch.setitem(binaries.PINS, "ngrok", binaries.Pin("3", "", {"amd64": hashlib.sha256(body).hexdigest()}, "t"))
    assert binaries._download_ngrok(tmp_path / "ngrok", None).read_bytes() == body


def test_every_supported_platform_pin_is_a_sha256() -> None:
    for command, pin in binaries.PINS.items():
        for arch, sha in pin.sha256.items():
            assert arch in ("amd64", "arm64") and len(sha) == 64 and int(sha, 16) >= 0, (command, arch)
