"""What the frps and frpc stand-ins share: frp's TOML config rules and their control messages.

Config files are read as real frp (>= 0.52) reads them: Go-template
``{{ .Envs.NAME }}`` substitution first, then TOML, with unknown keys
refused (frp's strict config). The link between the two stand-ins is a
newline-delimited JSON message stream carrying frp's message names (Login,
LoginResp, NewProxy, NewProxyResp, ReqWorkConn, NewWorkConn); like real frp,
a client that wants TLS sends the byte 0x17 first and then speaks TLS, and
the login carries md5(token + timestamp), never the token itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import time
from typing import Any, Dict, Iterable, Optional

try:
    import tomllib  # type: ignore[import-not-found]
except ImportError:  # python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

VERSION = "0.69.0"  # the frp release colabmagic pins (binaries.py); log lines follow its source
TLS_HEAD = b"\x17"
TEMPLATE = re.compile(r"\{\{\s*\.Envs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

CLIENT_KEYS = {
    "serverAddr", "serverPort", "loginFailExit", "user", "natHoleStunServer", "dnsServer", "start",
    "includes", "metadatas", "udpPacketSize", "proxies", "visitors",
    "auth.method", "auth.token", "auth.additionalScopes",
    "log.to", "log.level", "log.maxDays", "log.disablePrintColor",
    "webServer.addr", "webServer.port", "webServer.user", "webServer.password", "webServer.assetsDir",
    "webServer.pprofEnable",
    "transport.protocol", "transport.dialServerTimeout", "transport.dialServerKeepalive",
    "transport.connectServerLocalIP", "transport.proxyURL", "transport.poolCount", "transport.tcpMux",
    "transport.tcpMuxKeepaliveInterval", "transport.heartbeatInterval", "transport.heartbeatTimeout",
    "transport.tls.enable", "transport.tls.certFile", "transport.tls.keyFile", "transport.tls.trustedCaFile",
    "transport.tls.serverName", "transport.tls.disableCustomTLSFirstByte",
}
PROXY_KEYS = {
    "name", "type", "localIP", "localPort", "remotePort", "customDomains", "subdomain", "locations",
    "hostHeaderRewrite", "httpUser", "httpPassword", "annotations", "metadatas", "requestHeaders",
    "transport.useEncryption", "transport.useCompression", "transport.bandwidthLimit",
    "transport.proxyProtocolVersion", "healthCheck.type", "healthCheck.intervalSeconds",
    "loadBalancer.group", "loadBalancer.groupKey",
}
SERVER_KEYS = {
    "bindAddr", "bindPort", "vhostHTTPPort", "vhostHTTPSPort", "proxyBindAddr", "subDomainHost",
    "allowPorts", "maxPortsPerClient", "auth.method", "auth.token", "transport.tls.force",
    "transport.tls.certFile", "transport.tls.keyFile", "transport.tls.trustedCaFile",
    "log.to", "log.level", "log.disablePrintColor", "webServer.addr", "webServer.port",
    "webServer.user", "webServer.password",
}
PROXY_TYPES = {"tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp"}


class ConfigError(Exception):
    pass


def _flatten(table: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in ("metadatas", "annotations", "requestHeaders"):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _check(flat: Dict[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = set(allowed)
    for key in flat:
        if key not in allowed:
            raise ConfigError(f'{where}json: unknown field "{key}"')


def load(path: str, allowed: Iterable[str]) -> Dict[str, Any]:
    """Render templates, parse TOML, refuse unknown keys; the flattened top level (plus ``proxies``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from exc
    text = TEMPLATE.sub(lambda m: os.environ.get(m.group(1), ""), text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"toml: {exc}") from exc
    flat = _flatten({k: v for k, v in data.items() if k not in ("proxies", "visitors")})
    _check(flat, allowed, "")
    flat["proxies"] = []
    for proxy in data.get("proxies", []) or []:
        pflat = _flatten(proxy)
        _check(pflat, PROXY_KEYS, f"proxy [{proxy.get('name', '')}]: ")
        flat["proxies"].append(pflat)
    return flat


def privilege_key(token: str, timestamp: int) -> str:
    return hashlib.md5(f"{token}{timestamp}".encode()).hexdigest()


def send(sock: socket.socket, msg: Dict[str, Any]) -> None:
    sock.sendall(json.dumps(msg).encode() + b"\n")


def recv(sock: socket.socket, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
    """One message, read byte by byte so nothing after its newline is consumed; None at EOF."""
    sock.settimeout(timeout)
    buf = bytearray()
    try:
        while True:
            ch = sock.recv(1)
            if not ch:
                return None
            if ch == b"\n":
                break
            buf += ch
            if len(buf) > 1 << 20:
                return None
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass
    try:
        data = json.loads(buf.decode())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def log(level: str, where: str, message: str) -> None:
    """frp's console log format: ``2006-01-02 15:04:05.000 [I] [file.go:123] message``."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
    print(f"{stamp} [{level}] [{where}] {message}", file=sys.stdout, flush=True)
