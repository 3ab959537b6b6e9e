"""The ``ngrok`` provider: the ngrok agent, run by colabmagic's supervisor with a generated config.

pyngrok's own process handling (``ngrok.connect``) starts the agent as a
child of the kernel: in the kernel's process group (an Interrupt reaches
it), with the authtoken on its command line, killed when the kernel exits,
and with its tunnels created over the API, so a restarted agent would come
back with none. So colabmagic uses pyngrok for the plumbing (``PyngrokConfig``,
config validation, the agent API client, the binary install) and runs the
agent itself under the keeper: ``ngrok start --all --config FILE`` with the
tunnel defined in a 0600 config file that also holds the authtoken (secret
``NGROK_AUTHTOKEN``) and a loopback ``web_addr``. A restarted agent reads
the same file and brings the tunnel back by itself; the public URL is read
from the agent's local API ``/api/tunnels``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

import yaml
from pyngrok import conf, installer
from pyngrok import ngrok as pyngrok_api
from pyngrok.exception import PyngrokError

from ...errors import BadInputError, ColabMagicError, ServiceError
from ...system import paths, secrets, supervisor
from . import agent, binaries
from .base import Provider, PublicAddress, TunnelConfig, recorded_config

DOMAIN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$")
REMOTE_ADDR = re.compile(r"^(?=.{1,253}:)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}$")
REGIONS = ("us", "eu", "ap", "au", "sa", "jp", "in")


class MissingTokenError(ColabMagicError):
    """ngrok needs an authtoken and none was found."""


def config_data(config: TunnelConfig, token: str, web_port: int) -> Dict[str, Any]:
    """The agent config (ngrok's v2 config format, which the v3 agent reads) for one tunnel."""
    tunnel: Dict[str, Any] = {"proto": config.proto, "addr": f"127.0.0.1:{config.local_port}"}
    if config.proto == "http":
        tunnel["inspect"] = False  # no request capture in the agent's memory; an http-only field
    domain = str(config.options.get("domain") or "").strip()
    if domain:
        tunnel["domain"] = domain
    remote_addr = str(config.options.get("remote_addr") or "").strip()
    if remote_addr:
        tunnel["remote_addr"] = remote_addr  # a reserved TCP address: the same host:port every time
    data: Dict[str, Any] = {
        "version": "2",
        "authtoken": token,
        "web_addr": f"127.0.0.1:{web_port}",
        "log_level": "info",
        "log_format": "logfmt",
        "log": "stdout",
        "console_ui": False,
        "update_check": False,
        "tunnels": {config.name: tunnel},
    }
    region = str(config.options.get("region") or "").strip()
    if region:
        data["region"] = region
    return data


def pyngrok_config(binary: str, path: str) -> conf.PyngrokConfig:
    return conf.PyngrokConfig(ngrok_path=binary, config_path=path, config_version="2", monitor_thread=False,
                              request_timeout=2, start_new_session=True)


@dataclass(frozen=True)
class NgrokFacts(agent.ConfigFacts):
    """What the ngrok agent records beside its TunnelRecord."""

    web_port: int = 0  # its local API (/api/tunnels)


class NgrokProvider(Provider):
    name = "ngrok"

    def validate(self, config: TunnelConfig) -> None:
        domain = str(config.options.get("domain") or "").strip()
        if domain and (config.proto != "http" or not DOMAIN.match(domain)):
            raise BadInputError(f"--domain for ngrok must be a domain name on an http tunnel, not {domain!r}")
        remote_addr = str(config.options.get("remote_addr") or "").strip()
        if remote_addr and (config.proto != "tcp" or not REMOTE_ADDR.match(remote_addr)):
            raise BadInputError(f"--remote-addr for ngrok must be a reserved TCP address HOST:PORT on a tcp "
                                f"tunnel, not {remote_addr!r}")
        region = str(config.options.get("region") or "").strip()
        if region and region not in REGIONS:
            raise BadInputError(f"ngrok region must be one of {', '.join(REGIONS)}, not {region!r}")
        binaries.check("ngrok", config.binary, offline=config.offline)

    def spec(self, config: TunnelConfig) -> supervisor.ServiceSpec:
        self.validate(config)
        token = secrets.get("NGROK_AUTHTOKEN", description="ngrok authtoken (secret NGROK_AUTHTOKEN)")
        if not token:
            raise MissingTokenError(
                "ngrok needs an authtoken: add the secret NGROK_AUTHTOKEN (Colab or Kaggle Secrets, or the environment); "
                "get one at https://dashboard.ngrok.com/get-started/your-authtoken"
                + (f" ({secrets.hint('NGROK_AUTHTOKEN')})" if secrets.hint("NGROK_AUTHTOKEN") else "")
            )
        binary = binaries.resolve("ngrok", config.binary, offline=config.offline)
        web_port = agent.stable_port(config.name, agent.recorded(config.name, NgrokFacts).web_port)
        data = config_data(config, token.reveal(), web_port)
        try:
            installer.validate_config(data)
        except PyngrokError as exc:
            raise BadInputError(f"ngrok config refused: {exc}") from exc
        text = "# Written by colabmagic; re-written whole on every %tunnel. Do not edit.\n"
        text += yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
        path = agent.config_path(config.name, "ngrok.yml")
        paths.write_file(path, text, mode=0o600)
        return supervisor.ServiceSpec(
            name=config.name,
            argv=[binary, "start", "--all", "--config", str(path), "--log", "stdout", "--log-format", "logfmt"],
            info=NgrokFacts(web_port=web_port, config_file=str(path),
                            config_digest=hashlib.sha256(text.encode()).hexdigest()[:16]).to_info(),
            stop_timeout=5.0,
        )

    def _tunnel(self, config: TunnelConfig, service: supervisor.Service) -> Optional[pyngrok_api.NgrokTunnel]:
        facts = NgrokFacts.of(service)
        port = facts.web_port
        if not port:
            return None
        api_url = f"http://127.0.0.1:{port}"
        try:
            data = pyngrok_api.api_request(f"{api_url}/api/tunnels", method="GET", timeout=2)
        except (PyngrokError, OSError, ValueError):
            return None
        settings = pyngrok_config(config.binary or "ngrok", facts.config_file)
        for item in data.get("tunnels") or []:
            tunnel = pyngrok_api.NgrokTunnel(item, settings, api_url)
            if tunnel.name == config.name and tunnel.public_url:
                return tunnel
        return None

    def ready(self, config: TunnelConfig, service: supervisor.Service) -> bool:
        return self._tunnel(config, service) is not None

    def address(self, config: TunnelConfig, service: supervisor.Service) -> PublicAddress:
        tunnel = self._tunnel(config, service)
        if tunnel is None or not tunnel.public_url:
            return PublicAddress()
        parts = urlsplit(tunnel.public_url)
        if parts.scheme == "tcp":
            return PublicAddress(host=parts.hostname, port=parts.port)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return PublicAddress(host=parts.hostname, port=port, url=tunnel.public_url)

    def health(self, service: supervisor.Service) -> str:
        base = service.status
        if base != "running":
            return base
        return "running" if self._tunnel(recorded_config(service), service) is not None else "connecting"

    def explain(self, config: TunnelConfig, error: ServiceError) -> ServiceError:
        text = "\n".join(error.details)
        codes = re.findall(r"ERR_NGROK_\d+", text)
        if "authentication failed" in text or "ERR_NGROK_4018" in codes or "ERR_NGROK_105" in codes:
            reason = "ngrok refused the authtoken; check the secret NGROK_AUTHTOKEN"
        elif "ERR_NGROK_307" in codes or "ERR_NGROK_319" in codes:
            reason = ("that address is not reserved in your ngrok account (dashboard -> Universal Gateway -> "
                      "TCP Addresses or Domains)")
        elif "ERR_NGROK_108" in codes:
            reason = "your ngrok account allows one agent session at a time; stop the other agent first"
        elif codes:
            reason = f"ngrok reported {codes[-1]}"
        else:
            return error
        return ServiceError(f"{error.message}: {reason}", log=error.log, details=error.details)


PROVIDER = NgrokProvider()
