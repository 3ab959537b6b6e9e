"""Kaggle is its own platform: detected before Colab (its image sets COLAB_RELEASE_TAG too), its
Secrets are read through ``kaggle_secrets``, and nothing of hosted Colab's is used there.

Kaggle is played by tests/standins/kaggle (the ``kaggle_secrets`` client and a
loopback UserSecrets service); its ``google.colab`` by tests/standins/colab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from colabmagic.services import tunnels
from colabmagic.system import environment, secrets


def test_kaggle_is_detected_a_secret_comes_from_kaggle_and_no_colab_path_is_taken(
        ip: Any, kaggle: Any, colab: Dict[str, Any], listening_port: int, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # Colab's Secrets panel holds a different value: it must not be asked on Kaggle.
    colab["set_secrets"]({"FRP_TOKEN": {"payload": "colab-value", "access": True}})
    assert environment.platform_name() == "Kaggle"
    assert not environment.is_hosted_colab()

    doctor = str(ip.cell("%colabmagic doctor").value)
    assert "Kaggle" in doctor
    assert "Colab terms" not in doctor and "google-colab-cli" not in doctor

    got = ip.cell("from colabmagic.system import secrets as _s; _s.get('FRP_TOKEN', prompt=False)").value
    assert got.reveal() == "kaggle-frp-canary-7d1c" and got.source == "kaggle-secrets"
    assert kaggle.requests == ["FRP_TOKEN"]

    # --via colab: refused before anything starts, naming Kaggle; Colab's proxy is never asked.
    c = ip.cell(f"%tunnel {listening_port} --via colab", check=False)
    assert c.error is not None and "Kaggle" in str(c.error) and "cloudflared" in str(c.error)
    assert not tunnels.services()

    # Drive: the default backend is rclone (Colab's drive.mount raises NotImplementedError here).
    from colabmagic.services.drive.config import DriveConfig

    assert DriveConfig(remote=str(tmp_path)).resolved().backend == "rclone"

    # BitTorrent is not refused, and downloads go to Kaggle's saved output folder.
    from colabmagic.services.aria2 import daemon

    assert daemon.bittorrent_allowed(daemon.Aria2Config())
    monkeypatch.setattr(environment, "KAGGLE_WORKING", str(tmp_path))
    assert daemon.default_download_dir() == str(tmp_path / "downloads")

    # No Colab API was called at all: no Secrets lookup, no eval_js (proxy), no terms notice.
    assert colab["userdata"].calls == []
    assert colab["output"].calls == []
    assert "terms" not in c.output


def test_a_secret_not_attached_on_kaggle_is_one_line_and_asked_once(ip: Any, kaggle: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    monkeypatch.setattr(secrets, "_can_prompt", lambda: False)
    assert secrets.get("NGROK_AUTHTOKEN") is None
    assert secrets.get("NGROK_AUTHTOKEN") is None  # a second use in the same kernel
    assert kaggle.requests == ["NGROK_AUTHTOKEN"]
    line = secrets.hint("NGROK_AUTHTOKEN")
    assert "\n" not in line and "Add-ons > Secrets" in line and "NGROK_AUTHTOKEN" in line


def test_kaggle_secrets_unreachable_is_one_line_and_falls_through(ip: Any, kaggle: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Internet off in the notebook: the client cannot reach Kaggle's service.
    kaggle.stop()
    monkeypatch.setattr(secrets, "_can_prompt", lambda: False)
    assert secrets.get("FRP_TOKEN") is None
    assert "internet" in secrets.hint("FRP_TOKEN")
    monkeypatch.setenv("FRP_TOKEN", "from-env")  # the environment comes before Kaggle's Secrets
    assert secrets.get("FRP_TOKEN").source == "environment"


@pytest.mark.parametrize("token,expected", [(None, "not available in this session"),
                                            ("stale-token", "refused this session (HTTP 401)")])
def test_kaggle_secrets_without_a_valid_session_token_say_so_in_one_line(
        kaggle: Any, monkeypatch: pytest.MonkeyPatch, token: Any, expected: str) -> None:
    if token is None:
        monkeypatch.delenv("KAGGLE_USER_SECRETS_TOKEN")  # the client's CredentialError
    else:
        monkeypatch.setenv("KAGGLE_USER_SECRETS_TOKEN", token)  # a 401, which the client calls ConnectionError
    assert secrets.get("FRP_TOKEN", prompt=False) is None
    line = secrets.hint("FRP_TOKEN")
    assert expected in line and "\n" not in line
    assert secrets.get("NGROK_AUTHTOKEN", prompt=False) is None
    assert kaggle.requests == []  # not asked again for another name in this kernel
