"""The ``cloudflared`` provider: a Cloudflare quick tunnel (no account), supervised.

Runs ``cloudflared tunnel --no-autoupdate --metrics 127.0.0.1:PORT --url
http://127.0.0.1:LOCAL`` (``ssh://`` for colabmagic's sshd, ``tcp://`` for
another TCP port). The public host name is read from the metrics server's
``/quicktunnel`` endpoint and readiness from its ``/ready`` endpoint, never
guessed from log lines. A quick tunnel gets a new host name each time the
agent starts, so a restart announces the new address. SSH clients reach it
with ``ProxyCommand cloudflared access ssh --hostname %h``.
"""

from __future__ import annotations

import re
from typing import Dict

from ...errors import ServiceError
from ...system import supervisor
from . import agent, binaries
from .base import Provider, PublicAddress, TunnelConfig

HOSTNAME = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


def origin_url(config: TunnelConfig) -> str:
    """The ``--url`` cloudflared forwards to: http for web apps, ssh for our sshd, tcp otherwise."""
    if config.proto == "http":
        return f"http://127.0.0.1:{config.local_port}"
    scheme = "ssh" if config.name == "ssh" or config.options.get("service") == "ssh" else "tcp"
    return f"{scheme}://127.0.0.1:{config.local_port}"


class CloudflaredProvider(Provider):
    name = "cloudflared"
    protos = ("http", "tcp")

    def validate(self, config: TunnelConfig) -> None:
        binaries.check("cloudflared", config.binary)

    def spec(self, config: TunnelConfig) -> supervisor.ServiceSpec:
        binary = binaries.resolve("cloudflared", config.binary)
        metrics = agent.stable_port(config.name, "metrics_port")
        return supervisor.ServiceSpec(
            name=config.name,
            argv=[binary, "tunnel", "--no-autoupdate", "--metrics", f"127.0.0.1:{metrics}",
                  "--url", origin_url(config)],
            info={"metrics_port": metrics},
            stop_timeout=5.0,
        )

    def _metrics(self, service: supervisor.Service, path: str) -> object:
        port = service.info.get("metrics_port")
        if not port:
            return None
        return agent.get_json(f"http://127.0.0.1:{port}{path}")

    def _hostname(self, service: supervisor.Service) -> str:
        data = self._metrics(service, "/quicktunnel")
        hostname = str(data.get("hostname") or "") if isinstance(data, dict) else ""
        return hostname if HOSTNAME.match(hostname) else ""

    def _connected(self, service: supervisor.Service) -> bool:
        data = self._metrics(service, "/ready")
        return isinstance(data, dict) and int(data.get("readyConnections") or 0) > 0

    def ready(self, config: TunnelConfig, service: supervisor.Service) -> bool:
        return self._connected(service) and bool(self._hostname(service))

    def address(self, config: TunnelConfig, service: supervisor.Service) -> PublicAddress:
        hostname = self._hostname(service)
        if not hostname:
            return PublicAddress()
        if config.proto == "http":
            return PublicAddress(host=hostname, port=443, url=f"https://{hostname}")
        return PublicAddress(host=hostname, port=443)

    def health(self, service: supervisor.Service) -> str:
        base = service.status
        if base != "running":
            return base
        return "running" if self._connected(service) else "connecting"

    def ssh_options(self, config: TunnelConfig, address: PublicAddress) -> Dict[str, str]:
        return {"ProxyCommand": "cloudflared access ssh --hostname %h"}

    def explain(self, config: TunnelConfig, error: ServiceError) -> ServiceError:
        text = "\n".join(error.details)
        if "failed to request quick Tunnel" in text or "failed to unmarshal quick Tunnel" in text:
            return ServiceError(f"{error.message}: Cloudflare did not give a quick tunnel (no internet, "
                                "or too many requests); try again later or use another provider",
                                log=error.log, details=error.details)
        return error


PROVIDER = CloudflaredProvider()
