"""The ``colab`` provider: HTTP through hosted Colab's own port proxy, no third party.

``google.colab.output.eval_js("google.colab.kernel.proxyPort(PORT)")`` asks
the notebook's browser for the proxy URL of a local port. The URL works only
in the notebook user's browser session (Colab's proxy checks their Google
login), so this is for looking at a web UI yourself, not for sharing.
Colab runs the proxy; there is no local agent. The supervised process is a
placeholder that holds the tunnel's record (so ``%tunnel list``, ``stop`` and
``%colabmagic status`` treat it like the others) and ends with it.
"""

from __future__ import annotations

import re
import sys
from typing import Optional
from urllib.parse import urlsplit

from ...errors import ColabMagicError
from ...system import environment, probes, supervisor
from .base import Provider, PublicAddress, TunnelConfig, has_address

# Sleeps until signalled; "-I" keeps the user's environment (PYTHONPATH, ...) out of it.
PLACEHOLDER = "import signal, sys; sys.stdout.write('colab port proxy: no local agent\\n'); sys.stdout.flush(); signal.pause()"
URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
EVAL_JS_TIMEOUT = 30.0  # seconds the browser has to answer proxyPort; eval_js without one waits for ever


class NotOnColabError(ColabMagicError):
    """The colab provider needs hosted Colab's port proxy."""


class ColabProvider(Provider):
    name = "colab"

    def validate(self, config: TunnelConfig) -> None:
        if not environment.is_hosted_colab():
            where = "Kaggle has no such proxy" if environment.is_kaggle() else "this is not hosted Colab"
            raise NotOnColabError(
                f"--via colab works only on hosted Colab (it uses Colab's own port proxy; {where}); "
                "here use --via cloudflared, ngrok, frp or ssh"
            )

    def spec(self, config: TunnelConfig) -> supervisor.ServiceSpec:
        self.validate(config)
        return supervisor.ServiceSpec(
            name=config.name,
            argv=[sys.executable, "-I", "-c", PLACEHOLDER],
            info={"agent": "none (Colab's port proxy)"},
            stop_timeout=3.0,
        )

    def ready(self, config: TunnelConfig, service: supervisor.Service) -> bool:
        # The proxy answers only when something listens on the port.
        return probes.port_open(config.local_port)

    def address(self, config: TunnelConfig, service: supervisor.Service) -> PublicAddress:
        try:
            url = proxy_url(int(config.local_port))
        except ColabMagicError:
            if not has_address(service):
                service.stop()  # a first start: the placeholder holds nothing without an address
            raise
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return PublicAddress(host=parts.hostname, port=port, url=url)


class ColabProxyError(ColabMagicError):
    """Colab's notebook UI did not give the proxy address of a port."""


def proxy_url(port: int, timeout: Optional[float] = None) -> str:
    """The https URL of Colab's port proxy for ``port``, asked of the notebook's browser.

    ``google.colab.output.eval_js`` (colabtools google/colab/output/_js.py and
    _message.py) waits for the browser's reply: for ever without
    ``timeout_sec``, and with it returns None when no reply came; an error in
    the browser raises ``MessageError``. Each becomes one line here.
    """
    timeout = EVAL_JS_TIMEOUT if timeout is None else timeout
    try:
        from google.colab import output  # type: ignore[import-not-found]
    except ImportError as exc:
        raise NotOnColabError(f"google.colab is not importable here ({exc}); Colab's port proxy needs hosted Colab") from exc
    try:
        answer = output.eval_js(f"google.colab.kernel.proxyPort({int(port)})", timeout_sec=timeout)
    except Exception as err:  # google.colab._message.MessageError: the browser reported an error
        raise ColabProxyError(
            f"Colab's notebook UI refused to give the proxy address of port {port} ({type(err).__name__}: {err}); "
            "run the cell again from the Colab tab in your browser"
        ) from None
    url = str(answer).strip() if answer is not None else ""
    if answer is None:
        raise ColabProxyError(
            f"Colab's notebook UI gave no proxy address for port {port} within {timeout:g} s (eval_js returned "
            "None: the notebook is not open in a browser, or the output frame is gone); run the cell again "
            "from the Colab tab in your browser"
        )
    if not URL.match(url):
        raise ColabProxyError(f"Colab's notebook UI answered {url[:80]!r} instead of a proxy URL for port {port}")
    return url


PROVIDER = ColabProvider()
