"""Tunnels: start, list, supervise and stop the agents that expose a loopback port.

``PROVIDERS`` maps a provider name (``--via``) to the module implementing it
(both from the one registry, ``services/tunnel_registry.py``); each module exposes ``PROVIDER``, an instance of a ``base.Provider`` subclass,
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
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ...errors import BadInputError, ServiceError
from ...system import probes, supervisor
from .. import identity, jupyter, sshd, tunnel_registry
from . import exposure
from .base import Provider, PublicAddress, SshAccess, Tunnel, TunnelConfig, TunnelRecord

PROVIDERS: Dict[str, str] = {entry.name: entry.module for entry in tunnel_registry.ENTRIES}

SERVICE_PREFIX = "tunnel-"
GROUP = TunnelRecord.GROUP
# How long a tunnel may take to come up (TunnelMagics.timeout's default).
START_TIMEOUT = 60.0
# A killed agent is back within a few seconds: the keeper's back-off doubles from 0.5 s up to this.
BACKOFF_MAX = 4.0
# The Host name of the printed ~/.ssh/config block unless the user or an identity names another.
DEFAULT_HOST_ALIAS = "colabmagic"
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


def record_of(service: supervisor.Service) -> Optional[TunnelRecord]:
    """The typed tunnel record of ``service``, None if it is not a tunnel."""
    return TunnelRecord.read(service.info, service.name[len(SERVICE_PREFIX):])


def _tunnel(service: supervisor.Service, record: Optional[TunnelRecord] = None) -> Tunnel:
    record = record or record_of(service) or TunnelRecord(tunnel=service.name[len(SERVICE_PREFIX):])
    status = service.status
    try:
        status = provider(record.provider).health(service)
    except Exception:
        pass
    return Tunnel(
        name=record.tunnel,
        provider=record.provider,
        local_port=record.local_port,
        public_host=record.address.host,
        public_port=record.address.port,
        public_url=record.address.url,
        status=status,
        pid=service.pid,
        restarts=service.restarts,
        proto=record.proto,
        ssh=_ssh_access(record),
        relay=record.relay if record.provider == "ssh" else None,
        relay_login_key=record.relay_login_key,
    )


def _ssh_access(record: TunnelRecord) -> Optional[SshAccess]:
    access = record.ssh_access
    if not access or not record.address.host:
        return None
    options: Dict[str, str] = {}
    try:
        options = dict(provider(record.provider).ssh_options(record.config(), record.address))
    except Exception:
        pass
    return SshAccess(
        user=access.get("user", "root"),
        host_alias=access.get("host_alias", "colabmagic"),
        host_key_alias=access.get("host_key_alias", ""),
        known_hosts_line=access.get("known_hosts_line", ""),
        fingerprint=access.get("fingerprint", ""),
        options=options,
        folder=access.get("folder", ""),
    )


def public_address(service: supervisor.Service) -> str:
    """The tunnel's public address as shown: its URL, else host:port ("" before it has one)."""
    record = record_of(service)
    return record.address.shown() if record else ""


def _record_address(service: supervisor.Service, address: PublicAddress) -> None:
    record = record_of(service)
    if record is not None:
        record.with_address(address, service.pid).save(service)


def start(
    config: TunnelConfig,
    via: str,
    timeout: float = START_TIMEOUT,
    announce: Announce = _print,
    facts: Optional[Dict[str, Any]] = None,
) -> Tunnel:
    """Expose ``config.local_port`` through provider ``via``; reuse an identical running tunnel.

    Returns the ``Tunnel`` once the agent is ready and its public address known.
    """
    return launch(config, via, facts).wait(timeout, announce)


class TunnelLaunch:
    """A tunnel agent on its way up (``launch``); ``wait()`` gives the Tunnel."""

    def __init__(self, config: TunnelConfig, via: str, prov: Provider, started: supervisor.Launch):
        self.config, self.via, self.prov, self.started = config, via, prov, started

    def wait(self, timeout: float = START_TIMEOUT, announce: Announce = _print) -> Tunnel:
        config, via, prov = self.config, self.via, self.prov
        try:
            service = self.started.wait(timeout)
        except ServiceError as exc:
            raise prov.explain(config, exc) from None
        previous = public_address(service)
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
            if previous and previous != public_address(service):
                announce(f"tunnel {config.name!r} has a new public address: {public_address(service)}")
        return tunnel

    def add_facts(self, **facts: Any) -> None:
        """Complete the record with facts known only after the launch (TunnelRecord fields)."""
        service = self.started.service
        record = record_of(service)
        if record is not None:
            replace(record, **facts).save(service)

    def abort(self) -> None:
        self.started.abort()


def launch(config: TunnelConfig, via: str, facts: Optional[Dict[str, Any]] = None) -> TunnelLaunch:
    """Start the agent for ``config`` through ``via`` without waiting for it (see ``start``).

    ``facts`` are further TunnelRecord fields (ssh_access, stop_with).
    """
    prov = check(config, via)
    agent = prov.spec(config)
    info = dict(agent.info)  # the provider's own facts (its API port, config file, relay)
    info.update(TunnelRecord.for_config(config, via, **(facts or {})).to_info())
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
    host_alias: str = DEFAULT_HOST_ALIAS,
    timeout: float = START_TIMEOUT,
    progress: Optional[Callable[[float, str], None]] = None,
    announce: Announce = _print,
    folder: str = "",
    offline: bool = False,
) -> Tuple[Tunnel, sshd.Sshd]:
    """``%tunnel ssh``: colabmagic's sshd (started or reused) exposed through provider ``via``.

    Returns the tunnel (with ``ssh_config()``) and the sshd (whose ``password`` is set only
    when ``sshd_config.password`` asked for one).
    """
    if not HOST_ALIAS.match(host_alias):
        raise BadInputError(f"not a Host name for ~/.ssh/config: {host_alias!r}")
    sshd.check_user(sshd_config.user, sshd_config.password)
    probe = TunnelConfig(name=name, local_port=sshd_config.port or 22, proto="tcp",
                         options=dict(options or {}), binary=binary, offline=offline)
    check(probe, via)
    supervisor.warm_up()  # the keeper's interpreter starts while the host key and the agent's files are made
    # sshd and the agent come up side by side: the agent only forwards to sshd's port, so it starts
    # (and connects to the relay) as soon as the port is known, while sshd's config is written and checked.
    agents: List[TunnelLaunch] = []

    access = {"user": sshd_config.user, "host_alias": host_alias, "folder": folder}

    def launch_agent(port: int) -> None:
        config = TunnelConfig(name=name, local_port=port, proto="tcp", options=dict(options or {}), binary=binary,
                              offline=offline, end_to_end=True)
        agents.append(launch(config, via, facts={"ssh_access": access}))

    try:
        pending = sshd.begin(sshd_config, progress=progress, on_port=launch_agent)
    except BaseException:
        for started in agents:
            started.abort()  # no tunnel to an sshd that did not start
        supervisor.settle()
        raise
    agent = agents[0]
    # The host key is made after the agent started (it only forwards the port); clients learn it
    # from the record, completed before the tunnel is shown. Not part of the agent's fingerprint: a
    # new key does not restart the agent.
    key = pending.key
    agent.add_facts(ssh_access={**access, "host_key_alias": key.alias,
                                "known_hosts_line": key.known_hosts_line(key.alias), "fingerprint": key.fingerprint})
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


@dataclass(frozen=True)
class SshRequest:
    """``%tunnel ssh`` as plain data: what the line says and the settings it falls back to."""

    via: Optional[str] = None
    default_via: str = "cloudflared"  # TunnelMagics.provider
    options: Mapping[str, Any] = field(default_factory=dict)  # provider options (relay, server, ...)
    settings: tunnel_registry.TunnelSettings = field(default_factory=tunnel_registry.TunnelSettings)  # binaries
    keys: Tuple[str, ...] = ()  # --key
    key_files: Tuple[str, ...] = ()  # --key-file
    github: Tuple[str, ...] = ()  # --github
    password: bool = False
    user: Optional[str] = None  # --user
    default_user: str = sshd.DEFAULT_USER  # TunnelMagics.ssh_user
    port: Optional[int] = None  # sshd's loopback port
    env_names: Tuple[str, ...] = ()
    allow_forwarding: bool = False
    identity: Optional[str] = None  # --identity: a folder keeping host key, keys and provider settings
    name: str = "ssh"
    host_alias: str = DEFAULT_HOST_ALIAS  # the setting; an identity's own alias wins while it is the default
    folder: str = ""  # the folder the vscode:// link opens
    timeout: float = START_TIMEOUT
    offline: bool = False


def open_ssh(request: SshRequest, progress: Optional[Callable[[float, str], None]] = None,
             announce: Announce = _print) -> Tuple[Tunnel, sshd.Sshd]:
    """``%tunnel ssh`` whole: the keys, the identity (if any) filling in what the line leaves out,
    colabmagic's sshd and the tunnel (``start_ssh``), then the identity remembers the address."""
    path = request.identity or None
    keys = sshd.collect_keys(request.keys, request.key_files, request.github, use_secret=not path,
                             offline=request.offline)
    name = check_name(request.name)

    def check_request(via: str, options: Dict[str, Any], user: Optional[str]) -> None:
        sshd.check_user(user or request.default_user, request.password)
        check(TunnelConfig(name=name, local_port=22, proto="tcp", options=options,
                           binary=request.settings.binary(via), offline=request.offline), via or request.default_via)

    plan = identity.prepare(path, request.via, dict(request.options), keys, user=request.user, port=request.port,
                            default_via=request.default_via, check=check_request)
    if not plan.keys and path:
        plan.keys = sshd.collect_keys(offline=request.offline)
    via = plan.via or request.default_via
    config = sshd.SshdConfig(
        user=plan.user or request.default_user,
        port=plan.port,
        keys=plan.keys,
        password=request.password,
        env_names=request.env_names,
        allow_forwarding=request.allow_forwarding,
    )
    host_alias = request.host_alias
    if host_alias == DEFAULT_HOST_ALIAS and plan.host_alias:
        host_alias = plan.host_alias
    for line in plan.report:
        announce(line)
    tunnel, server = start_ssh(
        config, via, options=plan.options, binary=request.settings.binary(via), name=name, host_alias=host_alias,
        timeout=request.timeout, progress=progress, announce=announce, folder=request.folder,
        offline=request.offline,
    )
    identity.remember(plan, via, server.port, tunnel.public_port)
    return tunnel, server


def start_jupyter(
    via: str,
    options: Optional[Dict[str, Any]] = None,
    binary: Optional[str] = None,
    name: str = "jupyter",
    proto: str = "http",
    root_dir: Optional[str] = None,
    timeout: float = jupyter.START_TIMEOUT,
    announce: Announce = _print,
    insecure: bool = False,
    offline: bool = False,
) -> Tuple[Tunnel, jupyter.JupyterLab]:
    """``%tunnel jupyter``: JupyterLab (token auth, loopback, supervised) exposed through ``via``.

    Stopping the tunnel stops this JupyterLab too. Its token is a login, so a provider whose
    public side is not encrypted is refused unless ``insecure`` (see exposure.py).
    """
    provider(via)
    exposure.require_encrypted("JupyterLab's login token", via, proto, insecure,
                               exposure.SAFE_HTTP.format(port=8888), announce)
    check(TunnelConfig(name=name, local_port=8888, proto=proto, options=dict(options or {}), binary=binary,
                       offline=offline), via)
    lab = jupyter.ensure(root_dir=root_dir, timeout=timeout)
    if lab.reused:
        announce(f"JupyterLab was already running on 127.0.0.1:{lab.port}: reused it")
    config = TunnelConfig(name=name, local_port=lab.port, proto=proto, options=dict(options or {}),
                          binary=binary, offline=offline)
    tunnel = start(config, via, timeout=timeout, announce=announce,
                   facts={"stop_with": (jupyter.SERVICE,)})
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
    record = record_of(service)
    pid = service.pid
    if record is None or pid is None or record.agent_pid == pid:
        return None
    try:
        prov = provider(record.provider)
        config = record.config()
        if not prov.ready(config, service):
            return None
        address = prov.address(config, service)
    except Exception:
        return None
    if not (address.host or address.url):
        return None
    old = record.address.shown()
    _record_address(service, address)
    new = public_address(service)
    if new != old:
        announce(f"tunnel {record.tunnel!r} ({record.provider}) has a new public address: {new}")
        from ...system import notify

        # Announced here already (shown): the next cell does not repeat it; a webhook gets it.
        notify.emit("tunnel_address_changed", tunnel=record.tunnel, provider=record.provider,
                    address=new, previous=old, shown=True)
        return new
    return None


def services() -> List[supervisor.Service]:
    return [s for s in supervisor.running() if s.name.startswith(SERVICE_PREFIX) and record_of(s) is not None]


def list_tunnels(announce: Announce = _print) -> List[Tunnel]:
    """Every running tunnel (after checking restarted agents for a changed address)."""
    found = []
    for service in services():
        refresh(service, announce)
        found.append(_tunnel(service))
    return found


def get(name: str) -> Optional[Tunnel]:
    service = supervisor.adopt(service_name(name))
    record = record_of(service) if service is not None else None
    if service is None or record is None:
        return None
    return _tunnel(service, record)


def stop(name: str) -> bool:
    """Stop tunnel ``name``; also what only it used (its JupyterLab; sshd once no ssh tunnel is left)."""
    check_name(name)
    service = supervisor.adopt(service_name(name))
    if service is None:
        return False
    record = record_of(service)
    ran = service.stop()
    for extra in record.stop_with if record else ():
        other = supervisor.adopt(extra)
        if other is not None:
            other.stop()
    others = [r for r in (record_of(s) for s in services()) if r is not None]
    if record and record.ssh_access and not any(r.ssh_access for r in others):
        sshd.stop()
    return ran


def stop_all() -> List[str]:
    """Stop every tunnel, then colabmagic's sshd and JupyterLab if still running."""
    stopped = []
    for service in sorted(services(), key=lambda s: s.started_at, reverse=True):
        record = record_of(service)
        name = record.tunnel if record else service.name
        if stop(name):
            stopped.append(name)
    for extra in (sshd.stop, jupyter.stop):
        extra()
    return stopped


def nothing_listens(port: int) -> bool:
    """True when no program listens on 127.0.0.1:``port`` yet (a tunnel to it forwards once one does)."""
    return not probes.port_open(port)


def wait_public(name: str, timeout: float = 30.0) -> bool:
    """Wait until tunnel ``name``'s agent is running and its provider says it is ready."""
    def up() -> bool:
        service = supervisor.adopt(service_name(name))
        if service is None or service.pid is None:
            return False
        record = record_of(service)
        return record is not None and provider(record.provider).ready(record.config(), service)

    return probes.wait_for(up, timeout, interval=0.2)


def current() -> Dict[str, Tunnel]:
    """``_colabmagic.tunnels``: name -> Tunnel for every running tunnel (cheap, from disk)."""
    return {t.name: t for t in (_tunnel(s) for s in services())}


__all__ = [
    "PROVIDERS", "Provider", "PublicAddress", "Tunnel", "TunnelConfig", "provider", "start",
    "refresh", "list_tunnels", "get", "stop", "stop_all", "current", "check_port", "check_name",
]
