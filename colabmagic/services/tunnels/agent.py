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
from pathlib import Path
from typing import Any, Optional

from ...system import paths, probes, procfs, supervisor

SERVICE_PREFIX = "tunnel-"  # the service name the tunnel core gives tunnel NAME (tunnels/__init__.py)


def config_path(name: str, suffix: str) -> Path:
    """``$COLABMAGIC_HOME/tunnels/NAME.SUFFIX`` (the folder is 0700)."""
    return paths.subdir("tunnels") / f"{name}.{suffix}"


def recorded(name: str, key: str) -> Any:
    """A fact the running (or last) tunnel ``name`` recorded in its service info."""
    return supervisor.Service(SERVICE_PREFIX + name).info.get(key)


def stable_port(name: str, key: str) -> int:
    """The loopback API port recorded as ``key`` for tunnel ``name`` if still usable, else a free one."""
    previous = recorded(name, key)
    if isinstance(previous, int) and 0 < previous < 65536:
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
