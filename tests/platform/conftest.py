"""Fixtures for the platform tests: Kaggle and hosted Colab played by stand-ins (tests/standins).

``colab`` puts the ``google.colab`` stand-in on sys.path (Kaggle's image
carries it too); ``hosted_colab`` also sets what only hosted Colab has;
``kaggle`` sets Kaggle's environment (with Colab's COLAB_RELEASE_TAG, as
Kaggle's image does) and serves Kaggle's UserSecrets API on loopback for
the ``kaggle_secrets`` stand-in.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

STANDINS = Path(__file__).resolve().parents[1] / "standins"
PLATFORM_ENV = ("COLAB_RELEASE_TAG", "COLAB_BACKEND_VERSION", "TBE_EPHEM_CREDS_ADDR", "TBE_CREDS_ADDR",
                "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", "KAGGLE_USER_SECRETS_TOKEN")


def _forget_modules() -> None:
    for name in [m for m in sys.modules if m in ("kaggle_secrets", "kaggle_web_client")
                 or m == "google.colab" or m.startswith("google.colab.")]:
        del sys.modules[name]


@pytest.fixture
def colab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Dict[str, Any]]:
    """google.colab importable (stand-in); a Secrets panel held in a JSON file."""
    for name in PLATFORM_ENV:
        monkeypatch.delenv(name, raising=False)
    store = tmp_path / "colab-secrets.json"
    store.write_text("{}")
    monkeypatch.setenv("COLABMAGIC_STANDIN_USERDATA", str(store))
    monkeypatch.setenv("COLABMAGIC_STANDIN_EDGE_DIR", str(tmp_path / "edge"))
    # A caller that forgets timeout_sec is caught in 2 minutes, not the stand-in's hour.
    monkeypatch.setenv("COLABMAGIC_STANDIN_COLAB_FOREVER", "120")
    monkeypatch.syspath_prepend(str(STANDINS / "colab"))
    _forget_modules()
    from google.colab import output, userdata  # type: ignore[import-not-found]

    def set_secrets(entries: Dict[str, Dict[str, Any]]) -> None:
        store.write_text(json.dumps(entries))

    yield {"output": output, "userdata": userdata, "set_secrets": set_secrets, "monkeypatch": monkeypatch}
    _forget_modules()


@pytest.fixture
def hosted_colab(colab: Dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Dict[str, Any]:
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-standin")
    monkeypatch.setenv("TBE_EPHEM_CREDS_ADDR", "127.0.0.1:9")  # what only hosted Colab has
    return colab


@pytest.fixture
def kaggle(colab: Dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Kaggle: its variables, Colab's COLAB_RELEASE_TAG (inherited image), and its Secrets service."""
    monkeypatch.syspath_prepend(str(STANDINS / "kaggle"))
    from kaggle_service import KaggleSecretsService  # type: ignore[import-not-found]

    service = KaggleSecretsService({"FRP_TOKEN": "kaggle-frp-canary-7d1c"}, token="kernel-jwt").start()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-external-images_20260514-060047_RC00")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("KAGGLE_URL_BASE", service.url)
    monkeypatch.setenv("KAGGLE_USER_SECRETS_TOKEN", "kernel-jwt")
    yield service
    service.stop()


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port something listens on (what the colab provider exposes)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()
