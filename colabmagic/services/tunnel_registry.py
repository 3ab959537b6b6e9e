"""The one list of tunnel providers: names, modules, protocols, agent binaries and help texts.

Everything that names a provider reads it from here: ``tunnels.provider()``
(which module to import), ``tunnels.check`` (which protocols it carries),
binaries.py (the agent's command, its path setting, where to get it),
exposure.py (which public side is encrypted), the ``%tunnel`` and ``%vnc``
``--via`` help and ``TunnelMagics``' binary-path settings. Adding a provider
is adding its module and one ``ProviderEntry`` below.

It sits beside the ``tunnels`` package rather than in it, and imports only
the standard library, so ``%load_ext`` reads the names and help texts without
running ``tunnels/__init__.py`` (which loads the supervisor and sshd).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

# NamedTuples rather than frozen dataclasses: this module is read at %load_ext, and making a
# dataclass costs about 1.5 ms each (its methods are generated and compiled), a NamedTuple 0.1 ms.


class AgentBinary(NamedTuple):
    """A provider's agent program: its command, the TunnelMagics setting holding its path, its source."""

    command: str  # "frpc", "cloudflared", "ngrok"
    setting: str  # the TunnelMagics trait: "frpc_path"
    project: str  # where the user gets it by hand
    help: str  # the setting's help text

    @property
    def config_name(self) -> str:
        """What the user types after ``%config``: ``TunnelMagics.frpc_path``."""
        return f"TunnelMagics.{self.setting}"


class ProviderEntry(NamedTuple):
    """One tunnel provider as the rest of colabmagic sees it."""

    name: str  # the ``--via`` value
    module: str  # the module whose ``PROVIDER`` implements base.Provider
    protos: Tuple[str, ...]  # what it carries, in the order error messages list them
    encrypted_protos: Tuple[str, ...]  # of those, the ones whose public side is encrypted
    agent: Optional[AgentBinary] = None  # None: no binary of its own (ssh uses OpenSSH, colab a proxy)


ENTRIES: Tuple[ProviderEntry, ...] = (
    ProviderEntry("ssh", "colabmagic.services.tunnels.ssh", ("tcp", "http"), ()),
    ProviderEntry(
        "frp", "colabmagic.services.tunnels.frp", ("tcp", "http"), (),
        AgentBinary("frpc", "frpc_path", "https://github.com/fatedier/frp/releases",
                    "Path of the frpc binary (downloaded into $COLABMAGIC_HOME if empty "
                    "and the machine is online)."),
    ),
    ProviderEntry(
        "cloudflared", "colabmagic.services.tunnels.cloudflared", ("http", "tcp"), ("http", "tcp"),
        AgentBinary("cloudflared", "cloudflared_path", "https://github.com/cloudflare/cloudflared/releases",
                    "Path of the cloudflared binary (downloaded if empty and online)."),
    ),
    ProviderEntry(
        "ngrok", "colabmagic.services.tunnels.ngrok", ("http", "tcp"), ("http",),
        AgentBinary("ngrok", "ngrok_path", "https://ngrok.com/download",
                    "Path of the ngrok binary (pyngrok fetches it if empty and online)."),
    ),
    ProviderEntry("colab", "colabmagic.services.tunnels.colab", ("http",), ("http",)),
)

PROVIDERS: Mapping[str, ProviderEntry] = {entry.name: entry for entry in ENTRIES}
AGENTS: Mapping[str, AgentBinary] = {e.agent.command: e.agent for e in ENTRIES if e.agent is not None}
# For help texts: "ssh, frp, cloudflared, ngrok, colab".
NAMES = ", ".join(PROVIDERS)


def entry(name: str) -> Optional[ProviderEntry]:
    return PROVIDERS.get(name)


def encrypted(via: str, proto: str) -> bool:
    """True when the public side of a ``via`` tunnel of ``proto`` is encrypted."""
    found = PROVIDERS.get(via)
    return found is not None and proto in found.encrypted_protos


def binary_settings() -> Dict[str, AgentBinary]:
    """TunnelMagics trait name -> the agent it locates, for every provider with a binary."""
    return {agent.setting: agent for agent in AGENTS.values()}


def via_help(default: str = "") -> str:
    """The ``--via`` help text, the same in %tunnel and %vnc."""
    return f"one of {NAMES}" + (f" (default: {default})" if default else "")


class TunnelSettings(NamedTuple):
    """The tunnel settings a service needs when it opens a tunnel itself (``%vnc start --via``).

    Built from ``%config TunnelMagics`` by the magics layer and handed to the
    service as plain data: provider options (relay, frp server, ...) and each
    agent binary's path setting, by command.
    """

    options: Mapping[str, str] = MappingProxyType({})  # only the settings that are set
    binaries: Mapping[str, str] = MappingProxyType({})  # agent command -> its path setting

    def binary(self, via: Optional[str]) -> Optional[str]:
        """The path setting of provider ``via``'s agent, None when it is unset or there is none."""
        found = PROVIDERS.get(via or "")
        if found is None or found.agent is None:
            return None
        return self.binaries.get(found.agent.command) or None
