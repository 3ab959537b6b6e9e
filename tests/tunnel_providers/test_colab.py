"""The colab provider: Colab's port proxy through a google.colab stand-in, and the error elsewhere."""

from __future__ import annotations

import sys
from typing import Iterator

import pytest
from support.standin_client import STANDINS, Page, fetch_until

from colabmagic.services import tunnels


@pytest.fixture
def colab_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Look like hosted Colab: its environment variable and a google.colab that answers proxyPort."""
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-standin")
    monkeypatch.setenv("TBE_EPHEM_CREDS_ADDR", "127.0.0.1:9")  # what only hosted Colab has
    monkeypatch.syspath_prepend(str(STANDINS / "colab"))
    from google.colab import output  # type: ignore[import-not-found]

    yield output
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        del sys.modules[name]


def test_colab_proxy_url_reaches_the_page(ip, page: Page, colab_kernel: object) -> None:
    c = ip.cell(f"%tunnel {page.port} --via colab")
    t = c.value
    assert t.provider == "colab"
    assert f"google.colab.kernel.proxyPort({page.port})" in colab_kernel.calls  # type: ignore[attr-defined]
    assert t.public_url.startswith("https://") and f"-{page.port}-colab." in t.public_url
    assert page.marker in fetch_until(t.public_url, page.marker)
    assert t.public_url in c.stdout
    ip.cell(f"%tunnel stop {t.name}")
    assert not tunnels.services()


def test_colab_carries_http_only(ip, page: Page, colab_kernel: object) -> None:
    c = ip.cell(f"%tunnel {page.port} --via colab --proto tcp", check=False)
    assert c.error is not None and "http" in str(c.error)
    assert not tunnels.services()


def test_outside_colab_the_error_says_so(ip, page: Page, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("COLAB_BACKEND_VERSION", raising=False)
    monkeypatch.delenv("TBE_EPHEM_CREDS_ADDR", raising=False)
    c = ip.cell(f"%tunnel {page.port} --via colab", check=False)
    assert c.error is not None
    assert "only on hosted Colab" in str(c.error) and "cloudflared" in str(c.error)
    assert not tunnels.services()
