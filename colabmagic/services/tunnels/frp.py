"""The ``frp`` provider: frpc, supervised, exposing a local port through the user's own frps.

The frpc config is generated from data in frp's current TOML format
(``serverAddr``/``serverPort``, ``auth.token``, ``transport.tls.enable``,
``loginFailExit = false`` so a failed login is retried, one ``[[proxies]]``
entry: ``tcp`` with ``remotePort`` or ``http`` with ``customDomains``). The
token (secret ``FRP_TOKEN``) lives only in that 0600 file, never on a command
line or in the environment. frpc's admin API (``webServer``) listens on a
free loopback port behind a generated password; its ``/api/status`` is the
readiness and health probe and gives the public address frps assigned.

frpc verifies frps's certificate only when ``transport.tls.trustedCaFile`` is set
(frp's pkg/transport/tls.go, NewClientTLSConfig: without a CA file it sets
InsecureSkipVerify, so anyone on the path can pose as the server and collect
the login). colabmagic writes it from ``--frp-ca-file`` (``ca_file``), and
``transport.tls.serverName`` from ``--frp-server-name`` (``server_name``; frp's
default is ``serverAddr``), and warns once per server when there is no CA file.

The messages ``explain`` reads are those of frp 0.61 to 0.70's client/service.go
(``loopLoginUntilSuccess``): ``connect to server error: ERR``, where ERR is the
server's LoginResp error (``token in login doesn't match token from configuration``
from pkg/auth/token.go), a Go TLS error (``tls: failed to verify certificate: ...``)
or a dial error (``dial tcp HOST:PORT: connect: connection refused``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ...errors import BadInputError, ServiceError
from ...system import paths, secrets, supervisor
from . import agent, binaries
from .base import Provider, PublicAddress, TunnelConfig, recorded_config

ADMIN_USER = "colabmagic"
HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$")
DOMAIN = re.compile(r"^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def _toml(value: Any) -> str:
    """A TOML value: JSON's string escapes are valid TOML basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def parse_server(value: Any) -> Tuple[str, int]:
    """``host[:port]`` of the user's frps (port 7000 by default), checked before anything starts."""
    text = str(value or "").strip()
    if not text:
        raise BadInputError("frp needs --server HOST[:PORT] (your frps)")
    host, port = text, 7000
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            port = _port(rest.lstrip(":"), "frps port")
    elif text.count(":") == 1:
        host, raw = text.split(":")
        port = _port(raw, "frps port")
    if not HOST.match(host) or host.startswith("-"):
        raise BadInputError(f"not a server host name or address: {host!r}")
    return host, port


def _port(value: Any, what: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise BadInputError(f"{what} must be a number from 1 to 65535, not {value!r}")
    return int(text)


def _admin_password(name: str) -> secrets.Secret:
    """One generated admin password per tunnel name, kept so re-runs write the same config."""
    key = "frpc_admin_" + hashlib.sha256(name.encode()).hexdigest()[:16]
    found = secrets.load(key)
    if found:
        return found
    password = secrets.generate_password()
    secrets.store(key, password)
    return password


_WARNED: set = set()


def tls_options(config: TunnelConfig) -> Tuple[Optional[str], Optional[str]]:
    """The CA file (absolute, readable) and server name frpc verifies frps with, or BadInputError."""
    options: Mapping[str, Any] = config.options
    ca_file = str(options.get("ca_file") or "").strip() or None
    server_name = str(options.get("server_name") or "").strip() or None
    if ca_file is not None:
        ca_file = os.path.abspath(os.path.expanduser(ca_file))
        if not os.path.isfile(ca_file) or not os.access(ca_file, os.R_OK):
            raise BadInputError(f"--frp-ca-file {ca_file!r} is not a readable file (the CA certificate, PEM)")
    if server_name is not None and (not HOST.match(server_name) or server_name.startswith("-")):
        raise BadInputError(f"not a server name for --frp-server-name: {server_name!r}")
    return ca_file, server_name


def warn_unverified(config: TunnelConfig, announce: Any = None) -> None:
    """Once per frps: frpc does not verify a server without a CA file."""
    server = str(config.options.get("server") or "")
    if config.options.get("ca_file") or server in _WARNED:
        return
    _WARNED.add(server)
    line = (f"warning: frps at {server} is not verified (no --frp-ca-file): anyone on the path can pose as it "
            "and take the login; set %config TunnelMagics.frp_ca_file (and frp_server_name)")
    (announce or (lambda text: print(text, file=sys.stdout)))(line)


def validate(config: TunnelConfig) -> Tuple[str, int, Optional[int], Optional[str]]:
    """Server host and port, remote port (tcp) and domain (http) from the user's options, or BadInputError."""
    options: Mapping[str, Any] = config.options
    host, port = parse_server(options.get("server"))
    tls_options(config)
    if config.proto == "tcp":
        remote = options.get("remote_port")
        return host, port, (_port(remote, "remote port") if remote not in (None, "", 0) else 0), None
    domain = str(options.get("domain") or "").strip()
    if not domain:
        raise BadInputError("frp http needs --domain NAME (a domain your frps routes to its vhostHTTPPort); "
                            "for a plain TCP port use --proto tcp [--remote-port N]")
    if not DOMAIN.match(domain):
        raise BadInputError(f"not a domain name: {domain!r}")
    return host, port, None, domain


def render(config: TunnelConfig, token: Optional[str], admin_port: int, admin_password: str) -> str:
    """frpc.toml for ``config`` (frp >= 0.52 TOML format)."""
    host, port, remote_port, domain = validate(config)
    ca_file, server_name = tls_options(config)
    lines: List[str] = [
        "# Written by colabmagic; re-written whole on every %tunnel. Do not edit.",
        f"serverAddr = {_toml(host)}",
        f"serverPort = {port}",
        "loginFailExit = false",
        "transport.tls.enable = true",
        *([f"transport.tls.trustedCaFile = {_toml(ca_file)}"] if ca_file else []),
        *([f"transport.tls.serverName = {_toml(server_name)}"] if server_name else []),
        'log.to = "console"',
        'log.level = "info"',
        "log.disablePrintColor = true",
        'webServer.addr = "127.0.0.1"',
        f"webServer.port = {admin_port}",
        f"webServer.user = {_toml(ADMIN_USER)}",
        f"webServer.password = {_toml(admin_password)}",
    ]
    if token:
        lines += ['auth.method = "token"', f"auth.token = {_toml(token)}"]
    lines += [
        "",
        "[[proxies]]",
        f"name = {_toml(config.name)}",
        f"type = {_toml(config.proto)}",
        'localIP = "127.0.0.1"',
        f"localPort = {config.local_port}",
    ]
    if config.proto == "tcp":
        lines.append(f"remotePort = {remote_port}")
    else:
        lines.append(f"customDomains = {_toml([domain])}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FrpFacts(agent.ConfigFacts):
    """What frpc records beside its TunnelRecord."""

    admin_port: int = 0  # its admin API (/api/status), behind basic auth


class FrpProvider(Provider):
    name = "frp"

    def validate(self, config: TunnelConfig) -> None:
        validate(config)
        binaries.check("frpc", config.binary, offline=config.offline)

    def explain(self, config: TunnelConfig, error: ServiceError) -> ServiceError:
        text = "\n".join(error.details)
        server = config.options.get("server")
        reason = ""
        # frp 0.61-0.70 client/service.go: "connect to server error: ERR" for every failed login.
        found = re.findall(r"connect to server error: ([^\n]*)", text)
        failed = re.findall(r"login to the server failed: ([^\n]*?)(?:\. With loginFailExit|$)", text, re.M)
        last = (found[-1] if found else (failed[-1] if failed else "")).strip()
        if "tls: " in last or "x509: " in last or "certificate" in last:
            reason = (f"frps at {server} failed TLS verification ({last}); check --frp-ca-file and "
                      "--frp-server-name (the name in its certificate)")
        elif last and ("dial tcp" in last or "i/o timeout" in last or "no such host" in last or last == "EOF"):
            reason = f"frps at {server} cannot be reached ({last}); frpc keeps retrying"
        elif last:
            hint = "; check the secret FRP_TOKEN" if "token" in last or "authoriz" in last else ""
            reason = f"frps at {server} refused the login ({last}){hint}"
        elif "start error" in text:
            found = re.findall(r"start error: ([^\n]*)", text)
            reason = f"frps refused the proxy: {found[-1].strip()}"
        if not reason:
            return error
        return ServiceError(f"{error.message}: {reason}", log=error.log, details=error.details)

    def spec(self, config: TunnelConfig) -> supervisor.ServiceSpec:
        validate(config)  # bad input fails before anything is fetched or written
        warn_unverified(config)
        binary = binaries.resolve("frpc", config.binary, offline=config.offline)
        token = secrets.get("FRP_TOKEN", description="frps token (secret FRP_TOKEN; Enter for none)")
        admin_port = agent.stable_port(config.name, agent.recorded(config.name, FrpFacts).admin_port)
        password = _admin_password(config.name)
        text = render(config, token.reveal() if token else None, admin_port, password.reveal())
        path = agent.config_path(config.name, "frpc.toml")
        paths.write_file(path, text, mode=0o600)
        return supervisor.ServiceSpec(
            name=config.name,
            argv=[binary, "-c", str(path)],
            info=FrpFacts(admin_port=admin_port, config_file=str(path),
                          config_digest=hashlib.sha256(text.encode()).hexdigest()[:16]).to_info(),
            stop_timeout=5.0,
        )

    def _status(self, config: TunnelConfig, service: supervisor.Service) -> Optional[Dict[str, Any]]:
        port = FrpFacts.of(service).admin_port
        if not port:
            return None
        data = agent.get_json(f"http://127.0.0.1:{port}/api/status", ADMIN_USER,
                              _admin_password(config.name).reveal())
        if not isinstance(data, dict):
            return None
        for entries in data.values():
            for entry in entries or []:
                if isinstance(entry, dict) and entry.get("name") == config.name:
                    return entry
        return None

    def ready(self, config: TunnelConfig, service: supervisor.Service) -> bool:
        status = self._status(config, service)
        return bool(status and status.get("status") == "running" and status.get("remote_addr"))

    def address(self, config: TunnelConfig, service: supervisor.Service) -> PublicAddress:
        status = self._status(config, service) or {}
        remote = str(status.get("remote_addr") or "").split(",")[0].strip()
        if not remote:
            return PublicAddress()
        if config.proto == "http":
            host, _, port = remote.rpartition(":") if remote.count(":") == 1 else (remote, "", "")
            return PublicAddress(host=host or remote, port=int(port) if port.isdigit() else 80,
                                 url=f"http://{remote}")
        host, _, port = remote.rpartition(":")
        if not host:  # frpc leaves serverAddr off when it is empty
            host = parse_server(config.options.get("server"))[0]
        return PublicAddress(host=host, port=int(port) if port.isdigit() else None)

    def health(self, service: supervisor.Service) -> str:
        base = service.status
        if base != "running":
            return base
        status = self._status(recorded_config(service), service)
        if status is None:
            return "connecting"
        if status.get("status") == "running":
            return "running"
        err = str(status.get("err") or "").strip()
        return f"{status.get('status')}: {err}" if err else str(status.get("status"))


PROVIDER = FrpProvider()
