"""The ``cloudflared`` provider: a Cloudflare quick tunnel (no account), supervised.

Runs ``cloudflared tunnel --no-autoupdate --metrics 127.0.0.1:PORT --url
http://127.0.0.1:LOCAL`` (``ssh://`` for colabmagic's sshd, ``tcp://`` for
another TCP port). The public host name is read from the metrics server's
``/quicktunnel`` endpoint and readiness from its ``/ready`` endpoint, never
guessed from log lines. A quick tunnel gets a new host name each time the
agent starts, so a restart announces the new address. SSH clients reach it
with ``ProxyCommand cloudflared access ssh --hostname %h``.

A named tunnel (``hostname`` option, the token from the secret
CLOUDFLARE_TUNNEL_TOKEN or an identity's ``token_file``) keeps its host name
across runtimes: ``cloudflared tunnel run --token-file FILE --url ...`` (the
token in a 0600 file, never on the command line; cloudflared >= 2025.4.0).
Its host name is the one the user routed to the tunnel in Cloudflare;
readiness is the same ``/ready`` probe.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from ...errors import BadInputError, ServiceError
from ...system import paths, secrets, supervisor
from ..records import Record
from . import agent, binaries
from .base import Provider, PublicAddress, TunnelConfig

HOSTNAME = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
NAMED_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$")
TOKEN_SECRET = "CLOUDFLARE_TUNNEL_TOKEN"


def parse_token(text: str, where: str) -> Dict[str, str]:
    """A tunnel token's account and tunnel id; checked as cloudflared's ``ParseToken`` does.

    The token is standard base64 of JSON ``{"a": account, "t": tunnel UUID, "s": base64 secret}``
    (cloudflared cmd/cloudflared/tunnel/subcommands.go ``ParseToken``, connection/connection.go
    ``TunnelToken``, 2026.8.2).
    """
    problem = (f"{where} is not a Cloudflare tunnel token (the text the Zero Trust dashboard or "
               "`cloudflared tunnel token NAME` prints)")
    try:
        data = json.loads(base64.b64decode(str(text).strip(), validate=True))
        account, tunnel, secret = str(data["a"]), str(data["t"]), str(data["s"])
        uuid.UUID(tunnel)
        base64.b64decode(secret, validate=True)
    except (ValueError, TypeError, KeyError):
        raise BadInputError(problem) from None
    if not account or not secret:
        raise BadInputError(problem)
    return {"account": account, "tunnel_id": tunnel}


def named_hostname(config: TunnelConfig) -> str:
    """The fixed public host name of a named tunnel ("" for a quick tunnel)."""
    return str(config.options.get("hostname") or "").strip()


def _token(config: TunnelConfig) -> Optional[str]:
    path = config.options.get("token_file")
    if path:
        try:
            return Path(str(path)).read_text().strip()
        except OSError as exc:
            raise BadInputError(f"cannot read the tunnel token file {path}: {exc.strerror}") from None
    secret = secrets.get(TOKEN_SECRET, prompt=False)
    return secret.reveal().strip() if secret else None


def origin_url(config: TunnelConfig) -> str:
    """The ``--url`` cloudflared forwards to: http for web apps, ssh for our sshd, tcp otherwise."""
    if config.proto == "http":
        return f"http://127.0.0.1:{config.local_port}"
    scheme = "ssh" if config.name == "ssh" or config.options.get("service") == "ssh" else "tcp"
    return f"{scheme}://127.0.0.1:{config.local_port}"


@dataclass(frozen=True)
class QuickFacts(Record):
    """What cloudflared records beside its TunnelRecord (a quick tunnel: only this)."""

    metrics_port: int = 0  # its metrics server (/ready, /quicktunnel)


@dataclass(frozen=True)
class NamedFacts(QuickFacts):
    """A named tunnel (the user's Cloudflare account) records these too."""

    named_hostname: str = ""
    tunnel_id: str = ""
    # a new token must restart the agent: its digest is in the service fingerprint
    token_digest: str = ""


class CloudflaredProvider(Provider):
    name = "cloudflared"

    def validate(self, config: TunnelConfig) -> None:
        hostname = named_hostname(config)
        if hostname:
            if not NAMED_HOSTNAME.match(hostname):
                raise BadInputError(f"--hostname: not a host name: {hostname!r}")
            token = _token(config)
            if not token:
                raise BadInputError(
                    f"a named tunnel (--hostname {hostname}) needs its token: add the secret {TOKEN_SECRET} "
                    "(Zero Trust dashboard -> Networks -> Tunnels -> your tunnel, or `cloudflared tunnel token NAME`)"
                )
            parse_token(token, f"the secret {TOKEN_SECRET}")
        binaries.check("cloudflared", config.binary, offline=config.offline)

    def spec(self, config: TunnelConfig) -> supervisor.ServiceSpec:
        hostname = named_hostname(config)
        if hostname:
            return self._named_spec(config, hostname)
        binary = binaries.resolve("cloudflared", config.binary, offline=config.offline)
        metrics = agent.stable_port(config.name, agent.recorded(config.name, QuickFacts).metrics_port)
        return supervisor.ServiceSpec(
            name=config.name,
            argv=[binary, "tunnel", "--no-autoupdate", "--metrics", f"127.0.0.1:{metrics}",
                  "--url", origin_url(config)],
            info=QuickFacts(metrics_port=metrics).to_info(),
            stop_timeout=5.0,
        )

    def _named_spec(self, config: TunnelConfig, hostname: str) -> supervisor.ServiceSpec:
        token = _token(config) or ""
        ids = parse_token(token, f"the secret {TOKEN_SECRET}")
        binary = binaries.resolve("cloudflared", config.binary, offline=config.offline)
        metrics = agent.stable_port(config.name, agent.recorded(config.name, QuickFacts).metrics_port)
        path = agent.config_path(config.name, "tunnel-token")
        paths.write_file(path, token + "\n", mode=0o600)
        return supervisor.ServiceSpec(
            name=config.name,
            argv=[binary, "tunnel", "--no-autoupdate", "--metrics", f"127.0.0.1:{metrics}",
                  "run", "--token-file", str(path), "--url", origin_url(config)],
            info=NamedFacts(metrics_port=metrics, named_hostname=hostname, tunnel_id=ids["tunnel_id"],
                            token_digest=hashlib.sha256(token.encode()).hexdigest()[:16]).to_info(),
            stop_timeout=5.0,
        )

    def _metrics(self, service: supervisor.Service, path: str) -> object:
        port = QuickFacts.of(service).metrics_port
        if not port:
            return None
        return agent.get_json(f"http://127.0.0.1:{port}{path}")

    def _hostname(self, service: supervisor.Service) -> str:
        named = NamedFacts.of(service).named_hostname
        if named:
            return named
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
        if "Provided Tunnel token is not valid" in text:
            return ServiceError(f"{error.message}: cloudflared refused the tunnel token (secret {TOKEN_SECRET})",
                                log=error.log, details=error.details)
        if "Unauthorized" in text and named_hostname(config):
            return ServiceError(f"{error.message}: Cloudflare refused the tunnel token (secret {TOKEN_SECRET}): "
                                "the tunnel was deleted or its token was refreshed; copy the current token",
                                log=error.log, details=error.details)
        if "failed to request quick Tunnel" in text or "failed to unmarshal quick Tunnel" in text:
            return ServiceError(f"{error.message}: Cloudflare did not give a quick tunnel (no internet, "
                                "or too many requests); try again later or use another provider",
                                log=error.log, details=error.details)
        return error


PROVIDER = CloudflaredProvider()
