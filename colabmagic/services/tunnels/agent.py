"""Where a provider's agent keeps its files and its local API port, stable across re-runs.

Each agent (frpc, cloudflared, ngrok) gets a generated config file under
``$COLABMAGIC_HOME/tunnels`` (0600, written whole) and a loopback port for
its local API. Re-running the same ``%tunnel`` keeps the same port while it
is free or held by our own agent, so the config bytes and the service
fingerprint stay the same and the running agent is reused.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Type

from ...system import paths, probes, procfs, supervisor
from ..records import R, Record

SERVICE_PREFIX = "tunnel-"  # the service name the tunnel core gives tunnel NAME (tunnels/__init__.py)


@dataclass(frozen=True)
class ConfigFacts(Record):
    """An agent's generated config file, recorded beside its TunnelRecord. The digest is in the
    service's fingerprint: a changed config (new server, port, token) restarts the agent."""

    config_file: str = ""
    config_digest: str = ""


def config_path(name: str, suffix: str) -> Path:
    """``$COLABMAGIC_HOME/tunnels/NAME.SUFFIX`` (the folder is 0700)."""
    return paths.subdir("tunnels") / f"{name}.{suffix}"


def recorded(name: str, facts: Type[R]) -> R:
    """The provider's own facts (``facts``, a services/records.Record) the running (or last) tunnel
    ``name`` recorded beside its TunnelRecord."""
    return facts.of(supervisor.Service(SERVICE_PREFIX + name))


def stable_port(name: str, previous: int) -> int:
    """``previous``, the loopback API port tunnel ``name`` recorded, if still usable, else a free one."""
    if 0 < previous < 65536:
        holder = procfs.port_holder(previous)
        if holder is None:
            return previous
        service = supervisor.Service(SERVICE_PREFIX + name)
        if holder[0] and holder[0] == service.pid:
            return previous
    return probes.free_port()


def get_json(url: str, user: Optional[str] = None, password: Optional[str] = None, timeout: float = 2.0) -> Any:
    """GET a loopback JSON API (with basic auth when given); None when it does not answer with JSON."""
    request = urllib.request.Request(url)
    if user is not None and password is not None:
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - loopback URLs
            return json.loads(resp.read().decode("utf-8", "replace"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
