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
from urllib.parse import urlsplit

from ...errors import ColabMagicError
from ...system import environment, probes, supervisor
from .base import Provider, PublicAddress, TunnelConfig

# Sleeps until signalled; "-I" keeps the user's environment (PYTHONPATH, ...) out of it.
PLACEHOLDER = "import signal, sys; sys.stdout.write('colab port proxy: no local agent\\n'); sys.stdout.flush(); signal.pause()"
URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


class NotOnColabError(ColabMagicError):
    """The colab provider needs hosted Colab's port proxy."""


class ColabProvider(Provider):
    name = "colab"
    protos = ("http",)

    def validate(self, config: TunnelConfig) -> None:
        if not environment.is_hosted_colab():
            raise NotOnColabError(
                "--via colab works only on hosted Colab (it uses Colab's own port proxy); "
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
            from google.colab import output  # type: ignore[import-not-found]
        except ImportError as exc:
            raise NotOnColabError(f"google.colab is not importable here ({exc}); --via colab needs hosted Colab") from exc
        url = str(output.eval_js(f"google.colab.kernel.proxyPort({int(config.local_port)})") or "").strip()
        if not URL.match(url):
            return PublicAddress()
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return PublicAddress(host=parts.hostname, port=port, url=url)


PROVIDER = ColabProvider()
