"""Tunnels: start, list, supervise and stop the agents that expose a loopback port.

``PROVIDERS`` maps a provider name (``--via``) to the module implementing it;
each module exposes ``PROVIDER``, an instance of a ``base.Provider`` subclass,
and is imported only when used. A tunnel is one supervised service named
``tunnel-NAME``: the keeper restarts a dead agent with capped back-off, and
``refresh`` notices when a restarted agent got a different public address,
records it and announces it. Everything about a tunnel (its config, its
address) is kept in the service record, so a new kernel sees the same
tunnels through ``current()``.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...errors import BadInputError, ServiceError
from ...system import probes, supervisor
from .. import jupyter, sshd
from . import exposure
from .base import Provider, PublicAddress, SshAccess, Tunnel, TunnelConfig

PROVIDERS: Dict[str, str] = {
    "ssh": "colabmagic.services.tunnels.ssh",
    "frp": "colabmagic.services.tunnels.frp",
    "cloudflared": "colabmagic.services.tunnels.cloudflared",
    "ngrok": "colabmagic.services.tunnels.ngrok",
    "colab": "colabmagic.services.tunnels.colab",
}

SERVICE_PREFIX = "tunnel-"
GROUP = "tunnel"
# A killed agent is back within a few seconds: the keeper's back-off doubles from 0.5 s up to this.
BACKOFF_MAX = 4.0
HOST_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")

Announce = Callable[[str], None]


def _print(message: str) -> None:
    print(message, file=sys.stdout)


def provider(name: str) -> Provider:
    """The provider object for ``name`` (imports its module on first use)."""
    module_name = PROVIDERS.get(name)
    if module_name is None:
        raise BadInputError(f"unknown tunnel provider {name!r}; choose one of: {', '.join(PROVIDERS)}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInputError(f"tunnel provider {name!r} is not available in this build ({exc})") from exc
    found = getattr(module, "PROVIDER", None)
    if not isinstance(found, Provider):
        raise BadInputError(f"tunnel provider module {module_name} has no PROVIDER")
    return found


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise BadInputError(
            f"not a tunnel name: {name!r} (letters, digits, '.', '_', '-'; up to 48; no leading '-')"
        )
    return name


def check_port(value: Any, what: str = "port") -> int:
    """A TCP port 1..65535 from user input, or BadInputError."""
    text = str(value).strip()
    if not text.isdigit():
        raise BadInputError(f"{what} must be a number from 1 to 65535, not {value!r}")
    port = int(text)
    if not 1 <= port <= 65535:
        raise BadInputError(f"{what} must be from 1 to 65535, not {port}")
    return port


def service_name(name: str) -> str:
    return SERVICE_PREFIX + name


def _config_to_info(config: TunnelConfig, provider_name: str) -> Dict[str, Any]:
    return {
        "kind": "tunnel",
        "group": GROUP,
        "tunnel": config.name,
        "provider": provider_name,
        "local_port": config.local_port,
        "proto": config.proto,
        "options": dict(config.options),
        "binary": config.binary,
        "address": f"127.0.0.1:{config.local_port}",
    }


def _config_from_info(info: Dict[str, Any]) -> TunnelConfig:
    return TunnelConfig(
        name=str(info.get("tunnel", "")),
        local_port=int(info.get("local_port", 0)),
        proto=str(info.get("proto", "tcp")),
        options=dict(info.get("options") or {}),
        binary=info.get("binary"),
    )


def _tunnel(service: supervisor.Service, info: Optional[Dict[str, Any]] = None) -> Tunnel:
    info = info if info is not None else service.info
    status = service.status
    try:
        status = provider(str(info.get("provider"))).health(service)
    except Exception:
        pass
    return Tunnel(
        name=str(info.get("tunnel", service.name[len(SERVICE_PREFIX):])),
        provider=str(info.get("provider", "")),
        local_port=int(info.get("local_port", 0)),
        public_host=info.get("public_host"),
        public_port=info.get("public_port"),
        public_url=info.get("public_url"),
        status=status,
        pid=service.pid,
        restarts=service.restarts,
        proto=str(info.get("proto", "tcp")),
        ssh=_ssh_access(info),
    )


def _ssh_access(info: Dict[str, Any]) -> Optional[SshAccess]:
    access = info.get("ssh_access")
    if not isinstance(access, dict) or not info.get("public_host"):
        return None
    options: Dict[str, str] = {}
    try:
        address = PublicAddress(info.get("public_host"), info.get("public_port"), info.get("public_url"))
        options = dict(provider(str(info.get("provider"))).ssh_options(_config_from_info(info), address))
    except Exception:
        pass
    return SshAccess(
        user=str(access.get("user", "root")),
        host_alias=str(access.get("host_alias", "colabmagic")),
        host_key_alias=str(access.get("host_key_alias", "")),
        known_hosts_line=str(access.get("known_hosts_line", "")),
        fingerprint=str(access.get("fingerprint", "")),
        options=options,
        folder=str(access.get("folder", "")),
    )


def _record_address(service: supervisor.Service, address: PublicAddress) -> None:
    public = address.url or (f"{address.host}:{address.port}" if address.host else "")
    service.update_info(
        public_host=address.host,
        public_port=address.port,
        public_url=address.url,
        public=public,
        agent_pid=service.pid,
    )


def start(
    config: TunnelConfig,
    via: str,
    timeout: float = 60.0,
    announce: Announce = _print,
    extra_info: Optional[Dict[str, Any]] = None,
) -> Tunnel:
    """Expose ``config.local_port`` through provider ``via``; reuse an identical running tunnel.

    Returns the ``Tunnel`` once the agent is ready and its public address known.
    """
    return launch(config, via, extra_info).wait(timeout, announce)


class TunnelLaunch:
    """A tunnel agent on its way up (``launch``); ``wait()`` gives the Tunnel."""

    def __init__(self, config: TunnelConfig, via: str, prov: Provider, started: supervisor.Launch):
        self.config, self.via, self.prov, self.started = config, via, prov, started

    def wait(self, timeout: float = 60.0, announce: Announce = _print) -> Tunnel:
        config, via, prov = self.config, self.via, self.prov
        try:
            service = self.started.wait(timeout)
        except ServiceError as exc:
            raise prov.explain(config, exc) from None
        previous = service.info.get("public")
        address = prov.address(config, service)
        if not (address.host or address.url):
            details = service.log_tail()
            service.stop()
            raise ServiceError(f"tunnel {config.name!r} via {via} came up without a public address",
                               log=service.log, details=details)
        _record_address(service, address)
        tunnel = _tunnel(service)
        if service.reused:
            announce(f"tunnel {config.name!r} via {via} was already running: reused it")
            if previous and previous != service.info.get("public"):
                announce(f"tunnel {config.name!r} has a new public address: {service.info.get('public')}")
        return tunnel

    def abort(self) -> None:
        self.started.abort()


def launch(config: TunnelConfig, via: str, extra_info: Optional[Dict[str, Any]] = None) -> TunnelLaunch:
    """Start the agent for ``config`` through ``via`` without waiting for it (see ``start``)."""
    prov = check(config, via)
    agent = prov.spec(config)
    info = dict(agent.info)
    info.update(_config_to_info(config, via))
    info.update(extra_info or {})
    spec = supervisor.ServiceSpec(
        name=service_name(config.name),
        argv=list(agent.argv),
        env=dict(agent.env),
        cwd=agent.cwd,
        restart=True,
        backoff_max=min(agent.backoff_max, BACKOFF_MAX),
        stop_timeout=agent.stop_timeout,
        info=info,
    )

    def ready() -> bool:
        return prov.ready(config, supervisor.Service(spec.name))

    return TunnelLaunch(config, via, prov, supervisor.launch(spec, ready=ready))


def start_ssh(
    sshd_config: sshd.SshdConfig,
    via: str,
    options: Optional[Dict[str, Any]] = None,
    binary: Optional[str] = None,
    name: str = "ssh",
    host_alias: str = "colabmagic",
    timeout: float = 60.0,
    progress: Optional[Callable[[float, str], None]] = None,
    announce: Announce = _print,
    folder: str = "",
) -> Tuple[Tunnel, sshd.Sshd]:
    """``%tunnel ssh``: colabmagic's sshd (started or reused) exposed through provider ``via``.

    Returns the tunnel (with ``ssh_config()``) and the sshd (whose ``password`` is set only
    when ``sshd_config.password`` asked for one).
    """
    if not HOST_ALIAS.match(host_alias):
        raise BadInputError(f"not a Host name for ~/.ssh/config: {host_alias!r}")
    sshd.check_user(sshd_config.user, sshd_config.password)
    probe = TunnelConfig(name=name, local_port=sshd_config.port or 22, proto="tcp",
                         options=dict(options or {}), binary=binary)
    check(probe, via)
    supervisor.warm_up()  # the keeper's interpreter starts while the host key and the agent's files are made
    # sshd and the agent come up side by side: the agent only forwards to sshd's port, so it starts
    # (and connects to the relay) as soon as the port is known, while sshd's config is written and checked.
    agents: List[TunnelLaunch] = []

    def launch_agent(port: int, key: sshd.HostKey) -> None:
        config = TunnelConfig(name=name, local_port=port, proto="tcp", options=dict(options or {}), binary=binary)
        access = {
            "user": sshd_config.user,
            "host_alias": host_alias,
            "host_key_alias": key.alias,
            "known_hosts_line": key.known_hosts_line(key.alias),
            "fingerprint": key.fingerprint,
            "folder": folder,
        }
        agents.append(launch(config, via, extra_info={"ssh_access": access, "group": GROUP}))

    try:
        pending = sshd.begin(sshd_config, progress=progress, on_port=launch_agent)
    except BaseException:
        for started in agents:
            started.abort()  # no tunnel to an sshd that did not start
        supervisor.settle()
        raise
    agent = agents[0]
    try:
        server = pending.wait()
    except BaseException:
        agent.abort()  # no tunnel to an sshd that did not come up
        raise
    if server.reused:
        announce(f"colabmagic's sshd was already running on 127.0.0.1:{server.port}: reused it "
                 f"(host key {server.fingerprint})")
    tunnel = agent.wait(timeout, announce)
    return tunnel, server


def start_jupyter(
    via: str,
    options: Optional[Dict[str, Any]] = None,
    binary: Optional[str] = None,
    name: str = "jupyter",
    proto: str = "http",
    root_dir: Optional[str] = None,
    timeout: float = 90.0,
    announce: Announce = _print,
    insecure: bool = False,
) -> Tuple[Tunnel, jupyter.JupyterLab]:
    """``%tunnel jupyter``: JupyterLab (token auth, loopback, supervised) exposed through ``via``.

    Stopping the tunnel stops this JupyterLab too. Its token is a login, so a provider whose
    public side is not encrypted is refused unless ``insecure`` (see exposure.py).
    """
    provider(via)
    exposure.require_encrypted("JupyterLab's login token", via, proto, insecure,
                               exposure.SAFE_HTTP.format(port=8888), announce)
    check(TunnelConfig(name=name, local_port=8888, proto=proto, options=dict(options or {}), binary=binary), via)
    lab = jupyter.ensure(root_dir=root_dir, timeout=timeout)
    if lab.reused:
        announce(f"JupyterLab was already running on 127.0.0.1:{lab.port}: reused it")
    config = TunnelConfig(name=name, local_port=lab.port, proto=proto, options=dict(options or {}),
                          binary=binary)
    tunnel = start(config, via, timeout=timeout, announce=announce,
                   extra_info={"stop_with": [jupyter.SERVICE]})
    return tunnel, lab


def check(config: TunnelConfig, via: str) -> Provider:
    """Every check on a tunnel request, before anything is started or written."""
    check_name(config.name)
    check_port(config.local_port, "local port")
    prov = provider(via)
    if config.proto not in prov.protos:
        raise BadInputError(
            f"provider {via!r} does not carry {config.proto}; it carries: {', '.join(prov.protos)}"
        )
    prov.validate(config)
    return prov


def refresh(service: supervisor.Service, announce: Announce = _print) -> Optional[str]:
    """If the agent was restarted, ask the provider for its address; record and announce a change.

    Returns the new public address when it changed.
    """
    info = service.info
    pid = service.pid
    if pid is None or info.get("agent_pid") == pid:
        return None
    try:
        prov = provider(str(info.get("provider")))
        config = _config_from_info(info)
        if not prov.ready(config, service):
            return None
        address = prov.address(config, service)
    except Exception:
        return None
    if not (address.host or address.url):
        return None
    old = info.get("public")
    _record_address(service, address)
    new = service.info.get("public")
    if new != old:
        announce(f"tunnel {info.get('tunnel')!r} ({info.get('provider')}) has a new public address: {new}")
        from ...system import notify

        # Announced here already (shown): the next cell does not repeat it; a webhook gets it.
        notify.emit("tunnel_address_changed", tunnel=info.get("tunnel"), provider=info.get("provider"),
                    address=new, previous=old, shown=True)
        return str(new)
    return None


def services() -> List[supervisor.Service]:
    return [s for s in supervisor.running() if s.name.startswith(SERVICE_PREFIX)
            and s.info.get("kind") == "tunnel"]


def list_tunnels(announce: Announce = _print) -> List[Tunnel]:
    """Every running tunnel (after checking restarted agents for a changed address)."""
    found = []
    for service in services():
        refresh(service, announce)
        found.append(_tunnel(service))
    return found


def get(name: str) -> Optional[Tunnel]:
    service = supervisor.adopt(service_name(name))
    if service is None or service.info.get("kind") != "tunnel":
        return None
    return _tunnel(service)


def stop(name: str) -> bool:
    """Stop tunnel ``name``; also what only it used (its JupyterLab; sshd once no ssh tunnel is left)."""
    check_name(name)
    service = supervisor.adopt(service_name(name))
    if service is None:
        return False
    info = service.info
    ran = service.stop()
    for extra in info.get("stop_with") or []:
        other = supervisor.adopt(str(extra))
        if other is not None:
            other.stop()
    if info.get("ssh_access") and not any(s.info.get("ssh_access") for s in services()):
        sshd.stop()
    return ran


def stop_all() -> List[str]:
    """Stop every tunnel, then colabmagic's sshd and JupyterLab if still running."""
    stopped = []
    for service in sorted(services(), key=lambda s: s.started_at, reverse=True):
        name = str(service.info.get("tunnel", service.name))
        if stop(name):
            stopped.append(name)
    for extra in (sshd.stop, jupyter.stop):
        extra()
    return stopped


def wait_public(name: str, timeout: float = 30.0) -> bool:
    """Wait until tunnel ``name``'s agent is running and its provider says it is ready."""
    def up() -> bool:
        service = supervisor.adopt(service_name(name))
        if service is None or service.pid is None:
            return False
        info = service.info
        return provider(str(info.get("provider"))).ready(_config_from_info(info), service)

    return probes.wait_for(up, timeout, interval=0.2)


def current() -> Dict[str, Tunnel]:
    """``_colabmagic.tunnels``: name -> Tunnel for every running tunnel (cheap, from disk)."""
    return {t.name: t for t in (_tunnel(s) for s in services())}


__all__ = [
    "PROVIDERS", "Provider", "PublicAddress", "Tunnel", "TunnelConfig", "provider", "start",
    "refresh", "list_tunnels", "get", "stop", "stop_all", "current", "check_port", "check_name",
]
