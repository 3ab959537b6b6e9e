"""The one small interface every tunnel provider implements, and the Tunnel value object.

A provider module (ssh.py, frp.py, cloudflared.py, ngrok.py, colab.py) holds a
class derived from ``Provider``: it turns a ``TunnelConfig`` into a
supervised agent (``supervisor.ServiceSpec``), says when the agent is
ready and what its public address is, and how healthy it is. Adding a
provider is adding a file and an entry in ``services/tunnel_registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Tuple

from ... import display
from ...errors import ServiceError
from ...system import supervisor
from .. import tunnel_registry
from ..records import Record, flattened, left_out_when_empty


@dataclass(frozen=True)
class TunnelConfig:
    """What the user asked for, as plain data (built by the magic from its traits and line)."""

    name: str
    local_port: int
    proto: str = "tcp"  # "tcp" or "http"
    options: Mapping[str, Any] = field(default_factory=dict)  # provider options: relay, remote_port, server, ...
    binary: Optional[str] = None  # provider binary path setting (frpc_path, cloudflared_path, ...)
    offline: bool = False  # the offline setting: never download the agent binary
    # The payload is an SSH session to colabmagic's sshd (%tunnel ssh): end-to-end encrypted with its
    # own key exchange, whatever the tunnel's own hop does.
    end_to_end: bool = False


@dataclass(frozen=True)
class PublicAddress:
    host: Optional[str] = None
    port: Optional[int] = None
    url: Optional[str] = None

    def shown(self) -> str:
        """The address as the user sees it: the URL, else host:port ("" before there is one)."""
        return self.url or (f"{self.host}:{self.port}" if self.host else "")


@dataclass(frozen=True)
class TunnelRecord(Record):
    """What a tunnel's supervisor record says (``Service.info``), typed; it writes and reads itself.

    Written at launch (``for_config(...).to_info()``), completed with the public address once
    the agent has one, and read back by every later call and kernel (``read``). A provider
    adds facts of its own to the same dict (its agent's API port, config file: the ``*Facts``
    records beside its module); they survive because this record's keys never overlap them
    and a later write merges (``save``, ``Service.update_info``). The ssh provider writes
    ``relay`` and ``relay_login_key`` itself: left out here while empty, so the record written
    at launch (which has neither) keeps them.
    """

    KIND = "tunnel"
    GROUP = "tunnel"

    tunnel: str = ""  # the tunnel's name
    provider: str = ""
    local_port: int = 0
    proto: str = "tcp"
    options: Mapping[str, Any] = field(default_factory=dict)
    binary: Optional[str] = None
    # %tunnel ssh: how clients log in (see SshAccess); a plain tunnel's record has no such key
    ssh_access: Optional[Mapping[str, str]] = left_out_when_empty()
    stop_with: Tuple[str, ...] = ()  # services that only this tunnel used (its JupyterLab)
    # public_host, public_port, public_url: the keys the status table reads (records.Listing)
    address: PublicAddress = flattened("public_", PublicAddress)
    agent_pid: Optional[int] = None  # the agent the address was read from (a restart changes it)
    relay: Optional[str] = left_out_when_empty()  # ssh provider: user@host:port
    relay_login_key: Optional[str] = left_out_when_empty()  # ssh provider: colabmagic's public key for the relay

    @classmethod
    def for_config(cls, config: TunnelConfig, provider: str, **facts: Any) -> TunnelRecord:
        """The record a tunnel is launched with; ``facts`` are further fields (ssh_access, stop_with)."""
        return cls(tunnel=config.name, provider=provider, local_port=config.local_port, proto=config.proto,
                   options=dict(config.options), binary=config.binary, **facts)

    @classmethod
    def read(cls, info: Mapping[str, Any], name: str = "") -> Optional[TunnelRecord]:
        """The record in ``info``, or None when it is not a tunnel's; ``name`` if it names none."""
        if info.get("kind") != cls.KIND:
            return None
        record = cls.from_info(info)
        return record if record.tunnel else replace(record, tunnel=name)

    def loopback_port(self) -> int:
        return self.local_port

    def config(self) -> TunnelConfig:
        return TunnelConfig(name=self.tunnel, local_port=self.local_port, proto=self.proto,
                            options=dict(self.options), binary=self.binary, end_to_end=bool(self.ssh_access))

    def with_address(self, address: PublicAddress, agent_pid: Optional[int]) -> TunnelRecord:
        return replace(self, address=address, agent_pid=agent_pid)


def recorded_config(service: supervisor.Service) -> TunnelConfig:
    """The TunnelConfig a tunnel's agent was started with, read back from its record."""
    record = TunnelRecord.read(service.info, service.name)
    return record.config() if record is not None else TunnelConfig(name=service.name, local_port=0)


def has_address(service: supervisor.Service) -> bool:
    """True when the tunnel's record has a public address (from an earlier start)."""
    record = TunnelRecord.read(service.info, service.name)
    return bool(record is not None and record.address.shown())


class Provider:
    """Base class for a tunnel provider (one module each)."""

    name: str = ""

    @property
    def protos(self) -> Tuple[str, ...]:
        """What this provider carries (its registry entry says; "tcp" for one not listed there)."""
        entry = tunnel_registry.entry(self.name)
        return entry.protos if entry is not None else ("tcp",)

    def spec(self, config: TunnelConfig) -> supervisor.ServiceSpec:
        """The supervised agent process for ``config`` (argv, env, generated config files)."""
        raise NotImplementedError

    def ready(self, config: TunnelConfig, service: supervisor.Service) -> bool:
        """True once the agent has its tunnel up (a probe, never a sleep)."""
        raise NotImplementedError

    def address(self, config: TunnelConfig, service: supervisor.Service) -> PublicAddress:
        """The public address once ready (from the agent's API or metrics, not a guess)."""
        raise NotImplementedError

    def validate(self, config: TunnelConfig) -> None:
        """Refuse bad options (BadInputError) before anything is started or written. Optional."""

    def explain(self, config: TunnelConfig, error: ServiceError) -> ServiceError:
        """A clearer error for a failed start, read from the agent's log (optional)."""
        return error

    def health(self, service: supervisor.Service) -> str:
        return service.status

    def ssh_options(self, config: TunnelConfig, address: PublicAddress) -> Dict[str, str]:
        """Extra ``Host`` block options a client needs (ProxyCommand for cloudflared)."""
        return {}


# The client's order decides the cipher. OpenSSH clients prefer chacha20-poly1305, which is
# about half as fast as AES-GCM on CPUs with AES instructions (every cloud VM and laptop);
# see the throughput row in benchmarks/RESULTS.md.
CLIENT_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"


@dataclass(frozen=True)
class SshAccess:
    """How a client reaches colabmagic's sshd through a tunnel (only on ssh tunnels)."""

    user: str
    host_alias: str  # the ``Host`` name the block defines
    host_key_alias: str  # the name the known_hosts line is written for
    known_hosts_line: str  # "ALIAS TYPE BASE64": pins our sshd's host key
    fingerprint: str  # SHA256:... of that host key
    options: Mapping[str, str] = field(default_factory=dict)  # from Provider.ssh_options (ProxyCommand)
    folder: str = ""  # the folder the vscode:// link opens


@dataclass(frozen=True)
class Tunnel:
    """A running tunnel: what ``%tunnel`` returns and ``%tunnel list`` shows."""

    name: str
    provider: str
    local_port: int
    public_host: Optional[str] = None
    public_port: Optional[int] = None
    public_url: Optional[str] = None
    status: str = "running"
    pid: Optional[int] = None
    restarts: int = 0
    proto: str = "tcp"
    ssh: Optional[SshAccess] = None
    relay: Optional[str] = None  # ssh provider: the relay it goes through, user@host:port
    relay_login_key: Optional[str] = None  # ssh provider: colabmagic's own public key for the relay

    def _require_ssh(self) -> SshAccess:
        if self.ssh is None or not self.public_host:
            raise ValueError(f"tunnel {self.name!r} is not an ssh tunnel with a public address")
        return self.ssh

    def ssh_config(self) -> str:
        """A ``Host`` block for ~/.ssh/config (works as-is from VS Code Remote-SSH)."""
        ssh = self._require_ssh()
        lines = [
            f"Host {ssh.host_alias}",
            f"    HostName {self.public_host}",
            f"    Port {self.public_port or 22}",
            f"    User {ssh.user}",
            f"    HostKeyAlias {ssh.host_key_alias}",
            "    StrictHostKeyChecking yes",
            "    ServerAliveInterval 30",
            "    ServerAliveCountMax 4",
            f"    Ciphers {CLIENT_CIPHERS}",
        ]
        lines.extend(f"    {key} {value}" for key, value in sorted(ssh.options.items()))
        return "\n".join(lines) + "\n"

    def known_hosts_line(self) -> str:
        return self._require_ssh().known_hosts_line

    def vscode_url(self, folder: Optional[str] = None) -> Optional[str]:
        """``vscode://vscode-remote/ssh-remote+ALIAS/FOLDER``: VS Code opens FOLDER over Remote-SSH."""
        if self.ssh is None or not self.public_host:
            return None
        from ..identity import vscode_url

        return vscode_url(self.ssh.host_alias, folder or self.ssh.folder or "/")

    def ssh_command(self, *extra: str) -> str:
        """The one-line ``ssh`` command (needs the known_hosts line in ~/.ssh/known_hosts)."""
        ssh = self._require_ssh()
        parts = ["ssh", "-o", f"HostKeyAlias={ssh.host_key_alias}", "-c", CLIENT_CIPHERS,
                 "-p", str(self.public_port or 22)]
        for key, value in sorted(ssh.options.items()):
            parts += ["-o", f"'{key}={value}'" if " " in value else f"{key}={value}"]
        parts += list(extra)
        parts.append(f"{ssh.user}@{self.public_host}")
        return " ".join(parts)

    def _fields(self) -> list:
        return [
            ("provider", self.provider),
            ("local port", self.local_port),
            ("public", self.public_url or (f"{self.public_host}:{self.public_port}" if self.public_host else None)),
            ("status", self.status),
            ("restarts", self.restarts),
            ("pid", self.pid),
        ]

    def __repr__(self) -> str:
        return display.card_text(f"Tunnel {self.name}", self._fields())

    def _repr_html_(self) -> str:
        card = display.card_html(f"Tunnel {self.name}", self._fields())
        url = self.vscode_url()
        return card + display.link_html(url, "Open in VS Code (Remote-SSH)") if url else card
