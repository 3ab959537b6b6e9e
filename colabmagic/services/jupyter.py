"""JupyterLab for ``%tunnel jupyter``: supervised, on a loopback port, with token auth.

The token is generated once and kept in a 0600 secret file; it reaches
JupyterLab through a 0600 config file in a config folder of ours (never on
its command line), and JupyterLab masks it in its own log. The port is
remembered, so re-running reuses the same server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import ServiceError
from ..system import paths, probes, secrets, supervisor
from .records import Record

SERVICE = "jupyter"
TOKEN_SECRET = "JUPYTER_TOKEN"


@dataclass(frozen=True)
class JupyterLab:
    port: int
    pid: Optional[int]
    status: str
    root_dir: str
    reused: bool = False
    token: Optional[secrets.Secret] = field(default=None, repr=False, compare=False)

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/lab"


@dataclass(frozen=True)
class JupyterRecord(Record):
    """What the JupyterLab service records (its ``Service.info``), typed."""

    GROUP = "tunnel"  # `%tunnel jupyter` started it; `%colabmagic stop tunnel` stops it too

    port: int = 0
    root_dir: str = ""

    def loopback_port(self) -> int:
        return self.port


def folder() -> Path:
    return paths.subdir("jupyter")


def token_file() -> Path:
    return secrets.secret_path(TOKEN_SECRET)


def _token() -> secrets.Secret:
    token = secrets.load(TOKEN_SECRET)
    if not token:
        token = secrets.generate_token(24)
        secrets.store(TOKEN_SECRET, token)
    return token


def _server_major() -> int:
    try:
        from importlib.metadata import version

        return int(version("jupyter_server").split(".")[0])
    except Exception:
        return 2


def _port() -> int:
    remembered = folder() / "port"
    try:
        port = int(remembered.read_text())
    except (OSError, ValueError):
        port = 0
    running = supervisor.adopt(SERVICE)
    if port and running is not None and JupyterRecord.of(running).port == port:
        return port
    if port:
        try:
            supervisor.check_port_free(port, "JupyterLab")
            return port
        except Exception:
            pass
    return probes.free_port()


# JupyterLab's first start (its extensions, the build check) takes longer than a tunnel agent's.
START_TIMEOUT = 90.0


def ensure(root_dir: Optional[str] = None, timeout: float = START_TIMEOUT) -> JupyterLab:
    """Run (or reuse) JupyterLab on 127.0.0.1 with token auth; returns it with its token."""
    if importlib.util.find_spec("jupyterlab") is None:
        raise ServiceError(f"JupyterLab is not installed for {sys.executable}: run `pip install jupyterlab`")
    root = os.path.abspath(root_dir or os.getcwd())
    token = _token()
    port = _port()
    conf_dir = folder() / "config"
    conf_dir.mkdir(exist_ok=True)
    os.chmod(conf_dir, 0o700)
    runtime = folder() / "runtime"
    runtime.mkdir(exist_ok=True)
    os.chmod(runtime, 0o700)
    server = {
        "ip": "127.0.0.1",
        "port": port,
        "port_retries": 0,
        "open_browser": False,
        "allow_root": True,
        # Reached through a tunnel, the Host header names the public side; the token is the guard.
        "allow_remote_access": True,
        "root_dir": root,
    }
    config: dict = {"ServerApp": server}
    if _server_major() >= 2:
        config["IdentityProvider"] = {"token": token.reveal()}
    else:
        server["token"] = token.reveal()
    text = json.dumps(config, indent=1, sort_keys=True)
    paths.write_file(conf_dir / "jupyter_server_config.json", text, mode=0o600)
    paths.write_file(folder() / "port", f"{port}\n")
    spec = supervisor.ServiceSpec(
        name=SERVICE,
        argv=[sys.executable, "-m", "jupyterlab", "--no-browser"],
        env={"JUPYTER_CONFIG_DIR": str(conf_dir), "JUPYTER_RUNTIME_DIR": str(runtime),
             "JUPYTER_DATA_DIR": str(folder() / "data")},
        cwd=root,
        backoff_max=5.0,
        info=JupyterRecord(port=port, root_dir=root).to_info(),
    )
    if supervisor.adopt(SERVICE) is None:
        supervisor.check_port_free(port, "JupyterLab")
    service = supervisor.start(spec, ready=lambda: probes.http_ok(f"http://127.0.0.1:{port}/api/status"),
                               timeout=timeout)
    return JupyterLab(port=port, pid=service.pid, status=service.status, root_dir=root,
                      reused=service.reused, token=token)


def current() -> Optional[JupyterLab]:
    service = supervisor.adopt(SERVICE)
    if service is None:
        return None
    record = JupyterRecord.of(service)
    return JupyterLab(port=record.port, pid=service.pid, status=service.status, root_dir=record.root_dir)


def stop() -> bool:
    service = supervisor.adopt(SERVICE)
    return bool(service and service.stop())
