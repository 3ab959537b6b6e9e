"""What stands between a user and a first %%drive_sync: which rclone, a guard left by an earlier
run, and Google Drive credentials off Colab.

- An rclone older than 1.68 (Debian 12's own /usr/bin/rclone 1.60.1, and
  a stand-in of Debian 11 / Ubuntu 22.04's 1.53.3 that prints what that
  build's ``rclone version`` prints) is refused in one line naming both
  versions, before anything is mounted.
- A mountpoint an earlier run left immutable, found by a kernel with an
  empty COLABMAGIC_HOME: ``%colabmagic status`` names the guard and
  ``%%drive_sync`` lifts it, mounts and syncs.
- Google Drive with neither a service-account file nor google-auth
  credentials: the error says how to get one (nothing contacts Google).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

from colabmagic.errors import ColabMagicError
from colabmagic.services import drive
from colabmagic.services.drive import tracking, writers
from colabmagic.system import supervisor

HERE = Path(__file__).resolve().parent
RCLONE_1_53 = HERE.parent / "standins" / "rclone-1.53.3"


def configure(ip: Any, env: Dict[str, Path]) -> None:
    ip.cell(f"%config DriveMagics.remote = {str(env['remote'])!r}")
    ip.cell(f"%config DriveMagics.mountpoint = {str(env['mountpoint'])!r}")
    ip.cell("%config DriveMagics.write_back = '5m'")
    ip.cell("%config DriveMagics.backend = 'rclone'")


def debian_rclone() -> str:
    """Debian's own rclone package (1.60.1 on Debian 12), installed by the product's installer."""
    from colabmagic.system import installer

    if not os.path.exists("/usr/bin/rclone"):
        installer.ensure_packages(["rclone"])
    return "/usr/bin/rclone"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("which", ["debian", "1.53.3"])
def test_an_rclone_older_than_1_68_is_refused_in_one_line_before_mounting(
    ip: Any, rclone_env: Dict[str, Path], which: str
) -> None:
    path = debian_rclone() if which == "debian" else str(RCLONE_1_53)
    found = subprocess.run([path, "version"], capture_output=True, text=True).stdout.split()[1].lstrip("v")
    found = found.split("-")[0]
    configure(ip, rclone_env)
    ip.cell(f"%config DriveMagics.rclone = {path!r}")
    c = ip.cell(f"%%drive_sync\nopen({str(rclone_env['mountpoint'])!r} + '/a.txt', 'w').write('a')", check=False)
    err = c.error
    assert isinstance(err, ColabMagicError), err
    # One line, naming the rclone found and the version needed.
    assert len(str(err).splitlines()) == 1 and not err.details, str(err)
    assert f"rclone {found}" in err.message and "1.68" in err.message and path in err.message
    assert len(c.output.strip().splitlines()) == 1, c.output
    # Refused before anything ran: no mount, no rclone service, the cell body not run.
    assert supervisor.adopt("drive-rclone") is None
    assert not tracking.is_mounted(str(rclone_env["mountpoint"]))
    assert not (rclone_env["remote"] / "a.txt").exists()


def test_a_mountpoint_left_immutable_is_lifted_with_an_empty_colabmagic_home(
    ip: Any, rclone_env: Dict[str, Path], tmp_path: Path, cm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    # An earlier run, with its own COLABMAGIC_HOME, synced and left the mountpoint unmounted (guarded).
    monkeypatch.setenv("COLABMAGIC_HOME", str(tmp_path / "earlier-home"))
    config = drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp), write_back="5m")
    drive.mount(config)
    (mp / "a.txt").write_text("a")
    assert drive.unmount(config).verified
    # This kernel starts from an empty home: colabmagic has no record of that guard.
    monkeypatch.setenv("COLABMAGIC_HOME", str(cm_home))
    assert not list(cm_home.glob("drive/guard-*"))
    assert writers.immutable(str(mp))
    rm = subprocess.run(["rm", "-rf", str(mp)], capture_output=True, text=True)
    assert rm.returncode != 0 and "Operation not permitted" in rm.stderr
    configure(ip, rclone_env)
    # %colabmagic status says what it is and how to lift it.
    status = ip.cell("%colabmagic status").value
    text = repr(status)
    assert str(mp) in text and "immutable" in text and f"chattr -i {mp}" in text

    report = ip.cell(f"%%drive_sync\n_ = open({str(mp)!r} + '/b.txt', 'w').write('b')").value
    assert report.verified and [f.path for f in report.files] == ["b.txt"]
    assert (remote / "b.txt").read_text() == "b" and (mp / "a.txt").read_text() == "a"
    assert tracking.is_mounted(str(mp))
    assert drive.guards([str(mp)]) == []


def test_a_foreign_immutable_folder_is_not_lifted_but_named(
    ip: Any, rclone_env: Dict[str, Path]
) -> None:
    mp = rclone_env["mountpoint"]
    mp.mkdir()
    (mp / "keep.txt").write_text("someone's")
    subprocess.run(["chattr", "+i", str(mp)], check=True)
    configure(ip, rclone_env)
    c = ip.cell("%%drive_sync\npass", check=False)
    assert c.error is not None and "immutable" in c.error.message and f"chattr -i {mp}" in c.error.message
    assert writers.immutable(str(mp)) and (mp / "keep.txt").read_text() == "someone's"


@pytest.fixture
def no_google_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """google.auth.default() finds nothing: no metadata server probe, no gcloud login, no env key."""
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


@pytest.mark.parametrize("credentials", ["google-auth", "/nonexistent/service-account.json"])
def test_google_drive_without_credentials_says_how_to_get_them(
    ip: Any, rclone_env: Dict[str, Path], no_google_credentials: None, credentials: str
) -> None:
    configure(ip, rclone_env)
    ip.cell("%config DriveMagics.remote = 'gdrive:experiments'")
    ip.cell(f"%config DriveMagics.credentials = {credentials!r}")
    c = ip.cell("%%drive_sync\npass", check=False)
    message = c.error.message
    assert "service-account" in message and "gcloud auth application-default login" in message
    assert "DriveMagics.credentials" in message
    assert supervisor.adopt("drive-rclone") is None
