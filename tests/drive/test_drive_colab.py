"""%drive_sync with the colab backend, driven by stand-ins (this machine is not hosted Colab).

``google.colab.drive`` is played by tests/standins/colab/google/colab/drive.py
(the real functions' checks and messages, a slow flush, DriveFS-like delayed
uploads) and the Drive API's ``files.list`` and OAuth token endpoint by a
loopback server (tests/standins/drive_api.py) reached through real
google-auth credentials (``google.auth.default()``).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Dict

from colabmagic.services import drive
from colabmagic.services.drive import tracking

MB = 1 << 20


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def setup_colab(ip: Any, env: Dict[str, Any], credentials: bool = True) -> Path:
    cloud: Path = env["cloud"]
    (cloud / "sub").mkdir()
    (cloud / "model.bin").write_bytes(os.urandom(1 * MB))
    (cloud / "sub" / "old.txt").write_text("old\n")
    (cloud / "notes.txt").write_text("unchanged\n")
    if credentials:
        # What google.auth.default() returns on Colab once the user has authenticated.
        import google.auth

        def default(scopes: Any = None, **_kw: Any) -> Any:
            env["scopes"] = scopes
            return env["api"].credentials(), None

        env["monkeypatch"].setattr(google.auth, "default", default)
    ip.cell("%config DriveMagics.backend = 'colab'")
    ip.cell(f"%config DriveMagics.mountpoint = {str(env['mountpoint'])!r}")
    ip.cell(f"%config DriveMagics.drive_api_root = {env['api'].root!r}")
    return env["mountpoint"] / "MyDrive"


BODY = """
import os
with open({d!r} + '/new.bin', 'wb') as f:
    f.write(os.urandom(3 << 20))
os.makedirs({d!r} + '/sub/deep', exist_ok=True)
with open({d!r} + '/sub/deep/result.json', 'w') as f:
    f.write('{{"loss": 0.1}}')
with open({d!r} + '/model.bin', 'r+b') as f:
    f.seek(1000)
    f.write(os.urandom(4096))
os.remove({d!r} + '/sub/old.txt')
cloud_had_new_before_sync = os.path.exists({cloud!r} + '/new.bin')
"""


def test_colab_backend_verifies_by_md5_from_the_drive_api(ip: Any, colab_env: Dict[str, Any]) -> None:
    my_drive = setup_colab(ip, colab_env)
    cloud: Path = colab_env["cloud"]
    c = ip.cell("%%drive_sync\n" + BODY.format(d=str(my_drive), cloud=str(cloud)))
    report = c.value

    assert ip.user_ns["cloud_had_new_before_sync"] is False  # DriveFS had not pushed it yet
    assert report.verified and report.method == "md5Checksum from the Drive API"
    assert {f.path: f.status for f in report.files} == {
        "MyDrive/new.bin": "verified",
        "MyDrive/sub/deep/result.json": "verified",
        "MyDrive/model.bin": "verified",
        "MyDrive/sub/old.txt": "verified",
    }
    for rel in ("new.bin", "sub/deep/result.json", "model.bin"):
        assert md5(cloud / rel) == md5(my_drive / rel)
    assert not (cloud / "sub" / "old.txt").exists()
    api = colab_env["api"]
    assert api.tokens_issued >= 1 and api.refused == 0 and "root" in api.listings
    assert colab_env["scopes"] == ["https://www.googleapis.com/auth/drive.metadata.readonly"]
    assert "Mounted at" in c.stdout  # the stand-in printed what google.colab.drive prints
    assert tracking.is_mounted(str(colab_env["mountpoint"])) and my_drive.is_dir()
    again = ip.cell("%drive_sync").value
    assert again.ok and not again.changed and "no changes" in again.summary()


def test_a_flush_that_returns_without_pushing_is_caught_by_the_checksum(
    ip: Any, colab_env: Dict[str, Any], monkeypatch: Any
) -> None:
    # The offline-download article's case: flush_and_unmount returned, Drive did not get the data.
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE_DROP", "model.bin")
    my_drive = setup_colab(ip, colab_env)
    c = ip.cell("%%drive_sync\n" + BODY.format(d=str(my_drive), cloud=str(colab_env["cloud"])), check=False)
    err = c.error
    assert isinstance(err, drive.DriveSyncError)
    assert "MyDrive/model.bin" in err.message
    failed = {f.path: f.reason for f in err.report.failed}
    assert list(failed) == ["MyDrive/model.bin"]
    assert "md5 differs" in failed["MyDrive/model.bin"]  # same size: only a checksum sees it
    assert not err.report.verified


def test_without_credentials_the_check_is_by_size_and_the_report_says_so(
    ip: Any, colab_env: Dict[str, Any]
) -> None:
    my_drive = setup_colab(ip, colab_env, credentials=False)
    report = ip.cell("%%drive_sync\n" + BODY.format(d=str(my_drive), cloud=str(colab_env["cloud"]))).value
    assert report.ok and not report.verified
    assert report.method.startswith("size only (no Google credentials")
    assert {f.status for f in report.files if f.change != "deleted"} == {"size ok"}
    assert "NOT verified by checksum" in repr(report)
    assert colab_env["api"].listings == []


def test_a_slow_flush_is_cut_at_the_timeout_and_the_mount_comes_back(
    ip: Any, colab_env: Dict[str, Any], monkeypatch: Any
) -> None:
    my_drive = setup_colab(ip, colab_env)
    ip.cell(f"%%drive_sync\nopen({str(my_drive)!r} + '/a.txt', 'w').write('a')")
    monkeypatch.setenv("COLABMAGIC_STANDIN_DRIVE_FLUSH_SECONDS", "600")  # DriveFS that takes 10 min
    ip.cell(f"open({str(my_drive)!r} + '/b.txt', 'w').write('b')")
    started = time.monotonic()
    c = ip.cell("%drive_sync --timeout 2", check=False)
    took = time.monotonic() - started
    assert isinstance(c.error, drive.DriveSyncTimeout)
    assert "MyDrive/b.txt" in c.error.message
    assert took < 120  # the flush alone would take 600 s
    assert ip.cell("1 + 1").value == 2
    assert tracking.is_mounted(str(colab_env["mountpoint"])) and (my_drive / "b.txt").read_text() == "b"


def test_the_real_functions_checks_surface_as_errors(ip: Any, colab_env: Dict[str, Any]) -> None:
    setup_colab(ip, colab_env)
    c = ip.cell("%drive_sync", check=False)
    assert "nothing is mounted" in str(c.error)
    mountpoint: Path = colab_env["mountpoint"]
    mountpoint.mkdir()
    (mountpoint / "stray.txt").write_text("x")
    c = ip.cell("%%drive_sync\nx = 1", check=False)
    assert "Mountpoint must not already contain files" in str(c.error)
    assert "x" not in ip.user_ns
