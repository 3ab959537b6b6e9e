"""``%colabmagic doctor`` names the platform, the distribution and the versions found."""

from __future__ import annotations

import platform
from typing import Any, Dict

import IPython

from colabmagic.system import environment


def test_doctor_names_platform_distribution_and_versions(ip: Any, colab: Dict[str, Any]) -> None:
    text = str(ip.cell("%colabmagic doctor").value)
    assert "generic Linux" in text  # google.colab importable, COLAB_RELEASE_TAG unset: not hosted
    assert environment.distribution().split(" (")[0] in text
    assert platform.python_version() in text and IPython.__version__ in text
    for tool in ("OpenSSH", "rclone", "aria2", "TigerVNC"):
        assert tool in text
    assert "google-colab-cli" not in text


def test_doctor_on_hosted_colab_names_googles_own_remote_access_and_the_terms(
        ip: Any, hosted_colab: Dict[str, Any]) -> None:
    text = str(ip.cell("%colabmagic doctor").value)
    assert "hosted Colab" in text
    assert "VS Code" in text and "colab ssh" in text and "google-colab-cli" in text
    assert "differs by plan" in text or "differ by plan" in text
