"""Hosted Colab's APIs as they really fail, played by tests/standins/colab (written from colabtools).

eval_js returns None when the browser does not answer within ``timeout_sec``
and waits for ever without it; userdata raises SecretNotFoundError,
NotebookAccessError or (after 10 s without Colab's UI) TimeoutException;
drive.mount raises NotImplementedError where Colab's Drive is not. Each
gives one clear line, never a "None" URL or a hang.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

from colabmagic.errors import ColabMagicError
from colabmagic.services import tunnels
from colabmagic.services.tunnels import colab as colab_provider
from colabmagic.system import secrets


def one_line(error: BaseException) -> str:
    shown: List[str] = error._render_traceback_()  # type: ignore[attr-defined]
    assert len(shown) == 1, shown
    return shown[0]


@pytest.mark.parametrize("browser", ["no-answer", "error"])
def test_colab_proxy_without_an_answer_is_one_clear_line_not_a_hang(
        ip: Any, hosted_colab: Dict[str, Any], listening_port: int, browser: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLABMAGIC_STANDIN_EVAL_JS", browser)
    monkeypatch.setattr(colab_provider, "EVAL_JS_TIMEOUT", 2.0)  # 30 s in use; the same path
    c = ip.cell(f"%tunnel {listening_port} --via colab", check=False)
    assert isinstance(c.error, ColabMagicError)
    line = one_line(c.error)
    assert "run the cell again from the Colab tab" in line
    assert "None/" not in line and "http" not in line.split("port")[0]
    assert hosted_colab["output"].timeouts == [2.0]  # a timeout was always passed to eval_js
    assert not tunnels.services()  # nothing left running for a tunnel without an address


def test_vnc_web_url_on_colab_never_becomes_none(hosted_colab: Dict[str, Any], listening_port: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from colabmagic.services import vnc

    monkeypatch.setattr(colab_provider, "EVAL_JS_TIMEOUT", 2.0)
    monkeypatch.setenv("COLABMAGIC_STANDIN_EVAL_JS", "no-answer")
    with pytest.raises(ColabMagicError, match="gave no proxy address") as caught:
        vnc.colab_url(listening_port)
    assert "None/vnc.html" not in str(caught.value)
    monkeypatch.setenv("COLABMAGIC_STANDIN_EVAL_JS", "answer")
    url = vnc.colab_url(listening_port)
    assert url.startswith("https://") and url.endswith("/vnc.html?autoconnect=1&resize=remote")


def test_a_secret_the_notebook_was_not_granted_is_one_line_saying_how(ip: Any, hosted_colab: Dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRP_TOKEN", raising=False)
    hosted_colab["set_secrets"]({"FRP_TOKEN": {"payload": "not-for-this-notebook", "access": False}})
    c = ip.cell("from colabmagic.system import secrets as _s; _s.get('FRP_TOKEN', prompt=False)", check=False)
    line = one_line(c.error)
    assert "Notebook access" in line and "Secrets panel" in line and "FRP_TOKEN" in line
    assert "not-for-this-notebook" not in c.output


def test_a_missing_colab_secret_is_asked_once_and_the_error_says_where_to_add_it(
        ip: Any, hosted_colab: Dict[str, Any], listening_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    standins = Path(__file__).resolve().parents[1] / "standins"
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    monkeypatch.setattr(secrets, "_can_prompt", lambda: False)
    ip.cell(f"%config TunnelMagics.ngrok_path = '{standins / 'ngrok'}'")
    for _ in range(2):
        c = ip.cell(f"%tunnel {listening_port} --via ngrok", check=False)
        line = one_line(c.error)
        assert "Colab's Secrets have no NGROK_AUTHTOKEN" in line and "Secrets panel" in line
    assert hosted_colab["userdata"].calls == ["NGROK_AUTHTOKEN"]  # once per kernel, not once per use
    assert not tunnels.services()


def test_colab_secrets_without_colabs_ui_time_out_once_then_are_not_asked(
        hosted_colab: Dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLABMAGIC_STANDIN_USERDATA_NO_UI", "1")
    monkeypatch.setenv("COLABMAGIC_STANDIN_USERDATA_WAIT", "1")  # 10 s on Colab
    for name in ("FRP_TOKEN", "NGROK_AUTHTOKEN", "FRP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
        assert secrets.get(name, prompt=False) is None
    assert hosted_colab["userdata"].calls == ["FRP_TOKEN"]
    line = secrets.hint("NGROK_AUTHTOKEN")
    assert "\n" not in line and "Colab's UI" in line and "os.environ" in line


@pytest.mark.parametrize("host,expected", [
    ("kaggle", "Colab's Drive mount does not work here"),
    ("enterprise", "Colab Enterprise"),
])
def test_drive_mount_not_implemented_here_is_one_line_naming_rclone(
        ip: Any, colab: Dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        host: str, expected: str) -> None:
    (tmp_path / "drivefs" / "cloud").mkdir(parents=True)
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE", str(tmp_path / "drivefs"))
    monkeypatch.setenv("COLABMAGIC_STANDIN_COLAB_HOST", host)
    ip.cell("%config DriveMagics.backend = 'colab'")
    ip.cell(f"%config DriveMagics.mountpoint = {str(tmp_path / 'drive')!r}")
    c = ip.cell("%%drive_sync\nx = 1", check=False)
    line = one_line(c.error)
    assert expected in line and "--backend rclone" in line


def test_drive_mount_refusals_say_what_to_do(ip: Any, colab: Dict[str, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "drivefs" / "cloud").mkdir(parents=True)
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE", str(tmp_path / "drivefs"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "stray.txt").write_text("x")
    ip.cell("%config DriveMagics.backend = 'colab'")
    ip.cell(f"%config DriveMagics.mountpoint = {str(busy)!r}")
    line = one_line(ip.cell("%%drive_sync\nx = 1", check=False).error)
    assert "Mountpoint must not already contain files" in line and "empty that folder" in line
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE_AUTH", "denied")
    ip.cell(f"%config DriveMagics.mountpoint = {str(tmp_path / 'drive')!r}")
    line = one_line(ip.cell("%%drive_sync\nx = 1", check=False).error)
    assert "not granted" in line and "allow access" in line


def test_flush_where_colab_does_not_support_it_is_a_clear_error(ip: Any, colab: Dict[str, Any], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "drivefs" / "cloud").mkdir(parents=True)
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE", str(tmp_path / "drivefs"))
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE_FLUSH_SECONDS", "0")
    mp = tmp_path / "drive"
    ip.cell("%config DriveMagics.backend = 'colab'")
    ip.cell(f"%config DriveMagics.mountpoint = {str(mp)!r}")
    try:
        # Mounted; then (as where /var/colab/mp exists) flush_and_unmount raises NotImplementedError.
        body = (f"open({str(mp / 'MyDrive' / 'x.txt')!r}, 'w').write('x')\n"
                "import os; os.environ['COLABMAGIC_STANDIN_COLAB_HOST'] = 'mp'")
        c = ip.cell("%%drive_sync\n" + body, check=False)
        assert c.error is not None
        assert "does not work here" in str(c.error) and "--backend rclone" in str(c.error)
    finally:
        import subprocess

        from colabmagic.services.drive import writers

        subprocess.run(["umount", "-l", str(mp)], capture_output=True)
        writers.unguard(str(mp))
        subprocess.run(["chattr", "-i", str(mp)], capture_output=True)
