"""What may be exposed, and how: logins only over an encrypted path, control ports never by accident.

A service that carries a login (JupyterLab's token, VNC's password, the noVNC
page that asks for it) goes out only where the public side is encrypted:

- https from cloudflared, ngrok (http) or Colab's port proxy;
- cloudflared's tcp tunnels (the client runs ``cloudflared access``, TLS to Cloudflare);
- an ssh tunnel: ``%tunnel ssh``, then ``ssh -L`` from the client.

frp's and the ssh relay's public ports, and ngrok's tcp endpoints, are plain
tcp (or an http:// vhost): the login and everything after it would cross the
internet in clear, so such a request is refused in one line that names the safe
way, unless the user passes ``--insecure`` (then a warning says why it is unsafe).
SSH itself is encrypted end to end, so ``%tunnel ssh`` may use every provider.

Internal control ports (aria2's RPC, rclone's rc, raw VNC, websockify in front of
VNC, JupyterLab) are refused by ``%tunnel PORT`` unless ``--force``.
"""

from __future__ import annotations

import importlib
from typing import Callable, Optional, Type

from ...errors import BadInputError
from ...system import supervisor
from .. import tunnel_registry
from ..records import Record

# Counted by the fault suite's summary ("cleartext exposures refused").
REFUSED = {"count": 0}


def encrypted(via: str, proto: str) -> bool:
    """True when the public side of a ``via`` tunnel of ``proto`` is encrypted (the registry says).

    frp (tcp or an http:// vhost) and the ssh relay's port are plain on the internet.
    """
    return tunnel_registry.encrypted(via, proto)


def public_scheme(via: str, proto: str) -> str:
    if via == "ngrok" and proto == "tcp":
        return "raw tcp at ngrok's tcp endpoint"
    if proto == "http":
        return f"an http:// address via {via}"
    return f"a raw tcp port via {via}"


def require_encrypted(what: str, via: str, proto: str, insecure: bool, safe_way: str,
                      announce: Callable[[str], None] = print) -> None:
    """Refuse (BadInputError, one line) exposing ``what`` (a login) in clear, unless ``insecure``."""
    if encrypted(via, proto):
        return
    where = public_scheme(via, proto)
    if not insecure:
        REFUSED["count"] += 1
        raise BadInputError(f"refused: {what} would cross the internet in clear ({where}); "
                            f"safe: {safe_way}; --insecure exposes it anyway")
    announce(f"warning (--insecure): {what} crosses the internet in clear ({where}): anyone on the path "
             "can read it, log in and watch the session")


SAFE_HTTP = "--via cloudflared, ngrok or colab (https), or `%tunnel ssh` and then `ssh -L {port}:localhost:{port}`"
SAFE_TCP = "--via cloudflared (TLS; the client runs `cloudflared access tcp`), or `%tunnel ssh` and then " \
           "`ssh -L {port}:localhost:{port}`"


# service -> its record ("module:class" under colabmagic.services, see services/records.py), and
# what its loopback port is, when someone asks to expose that port.
CONTROL_PORTS = {
    "aria2": ("aria2.daemon:Aria2Record", "aria2's RPC (aria2c runs as root; its RPC can write files anywhere)"),
    "drive-rclone": ("drive.records:MountRecord", "rclone's remote-control API (it can read and change your Drive)"),
    "vnc-web": ("vnc.components:WebRecord",
                "the noVNC web client in front of VNC (plain http, it carries the VNC password)"),
    "vnc-xserver": ("vnc.components:XServerRecord",
                    "raw VNC (RFB) for display :{display}: an 8-character password and every keystroke in clear"),
    "jupyter": ("jupyter:JupyterRecord", "JupyterLab (its login token would cross in clear; use %tunnel jupyter)"),
}
VNC_BASE_PORT = 5900  # display :N listens on 5900 + N (vnc/components.py)


def internal_port(port: int) -> Optional[str]:
    """What a colabmagic control port is ("aria2's RPC ..."), or None for an ordinary port."""
    for service in supervisor.running():
        record, what = CONTROL_PORTS.get(service.name, ("", ""))
        if record and _record_class(record).of(service).loopback_port() == port:
            return what.format(display=port - VNC_BASE_PORT)
    if VNC_BASE_PORT <= port <= VNC_BASE_PORT + 99:
        return CONTROL_PORTS["vnc-xserver"][1].format(display=port - VNC_BASE_PORT)
    return None


def _record_class(where: str) -> Type[Record]:
    """The record class at "module:class" (imported now: only a running service's module)."""
    module, _, name = where.partition(":")
    found: Type[Record] = getattr(importlib.import_module(f"colabmagic.services.{module}"), name)
    return found


def check_port_exposable(port: int, force: bool, announce: Callable[[str], None] = print) -> None:
    """``%tunnel PORT``: refuse a control port without ``--force``; with it, say what the port is."""
    what = internal_port(port)
    if what is None:
        return
    if not force:
        REFUSED["count"] += 1
        raise BadInputError(f"refused: port {port} is {what}; it is not exposed without --force")
    announce(f"warning (--force): port {port} is {what}")
