"""The Debian installer against real apt: install, no-op, remove, a package that does not exist."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from colabmagic import display
from colabmagic.errors import InstallError
from colabmagic.system import installer

PACKAGE = "hello"  # small, no dependencies, in every Debian/Ubuntu archive


@pytest.fixture
def clean_package():
    if installer.is_installed(PACKAGE):
        installer.remove_packages([PACKAGE])
    yield
    if installer.is_installed(PACKAGE):
        installer.remove_packages([PACKAGE])


def test_install_noop_and_remove_with_progress(clean_package, capsys, cm_home):
    bar = display.ProgressBar(f"installing {PACKAGE}", notebook=False, min_interval=0)
    installed = installer.ensure_packages([PACKAGE], progress=bar)
    assert installed == [PACKAGE]
    assert shutil.which("hello")
    greeting = subprocess.run(["hello"], capture_output=True, text=True).stdout
    assert "Hello, world!" in greeting
    fractions = [f for f, _ in bar.updates]
    assert fractions[-1] == 1.0 and any(0 < f < 1 for f in fractions), fractions
    printed = capsys.readouterr().out
    assert "%" in printed and "installed hello" in printed

    apt_log = cm_home / "logs" / "apt.log"
    size = apt_log.stat().st_size
    assert installer.ensure_packages([PACKAGE]) == []  # second call: nothing to do, apt not run
    assert apt_log.stat().st_size == size

    assert installer.remove_packages([PACKAGE]) == [PACKAGE]
    assert not installer.is_installed(PACKAGE)
    assert installer.remove_packages([PACKAGE]) == []


def test_package_that_does_not_exist_gives_clear_error_with_apt_tail():
    with pytest.raises(InstallError) as err:
        installer.ensure_packages(["colabmagic-no-such-package"])
    lines = err.value._render_traceback_()
    assert "no such Debian package: colabmagic-no-such-package" in lines[0]
    assert any("apt-get" in line or "Reading package lists" in line or "Hit:" in line or "Get:" in line
               for line in lines[1:]), lines


def test_names_that_are_not_package_names_are_refused_before_apt_runs(cm_home):
    for bad in ["hello; touch /tmp/x", "-o", "--allow-unauthenticated", "a b", "hello\nsl"]:
        with pytest.raises(Exception) as err:
            installer.ensure_packages([bad])
        assert "not a Debian package name" in str(err.value)
    assert not (cm_home / "logs" / "apt.log").exists()


def test_installer_error_in_a_cell_is_one_line_plus_log(ip):
    cell = ip.cell(
        "from colabmagic.system import installer\ninstaller.ensure_packages(['colabmagic-no-such-package'])",
        check=False,
    )
    assert isinstance(cell.error, InstallError)
    assert "Traceback" not in cell.output
    assert "InstallError" in cell.output and "no such Debian package" in cell.output
