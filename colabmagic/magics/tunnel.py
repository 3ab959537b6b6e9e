"""``%tunnel``: SSH into this machine and expose local ports, through a chosen tunnel provider.

Parses the line, turns settings and options into plain config objects,
calls ``colabmagic.services.tunnels`` and returns a ``Tunnel``.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.utils.process import arg_split
from traitlets import Float, Int, Unicode, default
from traitlets import List as ListTrait

from .. import display
from ..services import tunnel_registry
from . import shown_once
from .base import ColabMagicsBase, defaults_from, help_on_demand, lazy_import, make_parser

if TYPE_CHECKING:
    from ..services.tunnels.base import Tunnel

# Loaded on first use, so %load_ext does not pay for the services' imports.
core = lazy_import("colabmagic.services.core")
jupyter = lazy_import("colabmagic.services.jupyter")
sshd = lazy_import("colabmagic.services.sshd")
tunnels = lazy_import("colabmagic.services.tunnels")

COMMANDS = ("ssh", "jupyter", "list", "stop")


def _provider_options(parser: MagicArgumentParser) -> None:
    group = parser.add_argument_group("provider options")
    group.add_argument("--via", metavar="PROVIDER", help=tunnel_registry.via_help())
    group.add_argument("--name", help="the tunnel's name (default: ssh, jupyter or the port)")
    group.add_argument("--relay", metavar="[USER@]HOST[:PORT]", help="ssh: the SSH server to tunnel through")
    group.add_argument("--relay-host-key", metavar="'TYPE BASE64'", help="ssh: the relay's host key (pinned)")
    group.add_argument("--relay-known-hosts", metavar="FILE", help="ssh: a known_hosts file with the relay's key")
    group.add_argument("--relay-key-file", metavar="PATH", help="ssh: private key to log in to the relay")
    group.add_argument("--remote-port", metavar="N", help="ssh/frp: the port opened on the relay or frps")
    group.add_argument("--server", metavar="HOST:PORT", help="frp: your frps server")
    group.add_argument("--domain", help="frp: custom domain for http; ngrok: reserved domain")
    group.add_argument("--remote-addr", metavar="HOST:PORT", help="ngrok: a reserved TCP address "
                       "(the same address on every runtime)")
    group.add_argument("--hostname", metavar="HOST", help="cloudflared: the fixed host name of a named tunnel "
                       "(its token from the secret CLOUDFLARE_TUNNEL_TOKEN)")
    group.add_argument("--frp-ca-file", metavar="PATH", help="frp: CA certificate that signed your frps's TLS "
                       "certificate (frpc verifies the server with it)")
    group.add_argument("--frp-server-name", metavar="NAME", help="frp: the name in frps's certificate "
                       "(default: the --server host)")


DESCRIPTION = "SSH into this machine and expose local ports through a tunnel provider."


@functools.cache
def parsers() -> SimpleNamespace:
    """``%tunnel``'s parsers, built on first use (building argparse parsers is most of an import's cost)."""
    main = make_parser("tunnel", DESCRIPTION)
    sub = main.add_subparsers(dest="command", metavar="ssh|PORT|jupyter|list|stop")
    ssh = sub.add_parser("ssh", help="colabmagic's own sshd, exposed through the provider")
    ssh.add_argument("--key", action="append", default=[], metavar="PUBKEY", help="a public key to authorize")
    ssh.add_argument("--key-file", action="append", default=[], metavar="PATH", help="a .pub or authorized_keys file")
    ssh.add_argument("--github", action="append", default=[], metavar="USER", help="authorize USER's GitHub keys")
    ssh.add_argument("--password", action="store_true", help="also allow a generated password (shown once)")
    ssh.add_argument("--user", help="the login user (default: root)")
    ssh.add_argument("--allow-forwarding", action="store_true",
                     help="let a --user other than root forward ports (ssh -L); root always may")
    ssh.add_argument("--port", metavar="N", help="sshd's loopback port (default: remembered, else a free one)")
    ssh.add_argument("--env", action="append", default=[], metavar="NAME",
                     help="also pass this kernel variable to SSH sessions")
    ssh.add_argument("--proto", choices=["tcp"], default="tcp", help="tcp (ssh is always tcp)")
    ssh.add_argument("--identity", metavar="PATH", help="a folder you own (on Drive, say) keeping the host key, "
                     "authorized keys, relay key and provider settings: the same host and address on a new runtime")
    ssh.add_argument("--folder", metavar="PATH", help="the folder the vscode:// link opens (default: the "
                     "notebook's working directory)")
    _provider_options(ssh)
    jup = sub.add_parser("jupyter", help="JupyterLab with token auth, exposed through the provider")
    jup.add_argument("--show-token", action="store_true", help="print the login URL with its token")
    jup.add_argument("--proto", choices=["http", "tcp"], default="http")
    jup.add_argument("--insecure", action="store_true", help="allow a provider whose public side is not "
                     "encrypted (frp, the ssh relay, ngrok tcp): the token crosses in clear")
    _provider_options(jup)
    sub.add_parser("list", help="name, provider, local port, public address, state, restarts, pid")
    stop = sub.add_parser("stop", help="stop a tunnel by name, or --all")
    stop.add_argument("name", nargs="?", default="")
    stop.add_argument("--all", action="store_true", dest="all_tunnels")

    port = make_parser("tunnel PORT", "Expose a local port (TensorBoard, Gradio, a web UI).")
    port.add_argument("port", metavar="PORT")
    port.add_argument("--proto", choices=["http", "tcp"], default="http")
    port.add_argument("--force", action="store_true", help="expose even one of colabmagic's control ports "
                       "(aria2 RPC, rclone rc, raw VNC, noVNC, JupyterLab)")
    _provider_options(port)
    return SimpleNamespace(main=main, ssh=ssh, port=port, jupyter=jup, stop=stop)


@magics_class
class TunnelMagics(ColabMagicsBase):
    """``%tunnel``: SSH into this machine and expose local ports through a tunnel provider."""

    provider = Unicode("cloudflared", help="The provider used when --via is not given: "
                       + tunnel_registry.NAMES).tag(config=True)
    relay = Unicode("", help="Default --relay for the ssh provider: [user@]host[:port].").tag(config=True)
    relay_host_key = Unicode("", help="Default --relay-host-key ('TYPE BASE64').").tag(config=True)
    relay_known_hosts = Unicode("", help="Default --relay-known-hosts (a known_hosts file).").tag(config=True)
    relay_key_file = Unicode("", help="Default --relay-key-file (private key for the relay).").tag(config=True)
    frp_server = Unicode("", help="Default --server for the frp provider (host:port).").tag(config=True)
    frp_ca_file = Unicode("", help="Default --frp-ca-file: the CA certificate frpc verifies frps with "
                          "(without it frpc does not verify the server).").tag(config=True)
    frp_server_name = Unicode("", help="Default --frp-server-name: the name in frps's certificate.").tag(config=True)
    # One path setting per provider agent (frpc_path, cloudflared_path, ngrok_path), from the registry.
    locals().update({setting: Unicode("", help=agent.help).tag(config=True)
                     for setting, agent in tunnel_registry.binary_settings().items()})
    ssh_user = Unicode(help="The user %tunnel ssh logs in as.").tag(config=True)
    sshd_port = Int(0, help="colabmagic's sshd loopback port (0: remembered, else a free one).").tag(config=True)
    ssh_env = ListTrait(Unicode(), default_value=[], help="Extra kernel variables SSH sessions see "
                        "(like --env).").tag(config=True)
    host_alias = Unicode(help="The Host name in the printed ~/.ssh/config block (with an "
                         "identity, the identity's own alias unless you change this).").tag(config=True)
    identity = Unicode("", help="Default --identity for %tunnel ssh: a folder you own keeping the host key, "
                       "authorized keys, relay key and provider settings across runtimes.").tag(config=True)
    timeout = Float(help="Seconds to wait for a tunnel to come up.").tag(config=True)
    # Defaults written once, in the services: SshdConfig.user, tunnels.START_TIMEOUT and DEFAULT_HOST_ALIAS.
    locals().update(defaults_from("colabmagic.services.sshd:SshdConfig", ssh_user="user"))

    @default("timeout")
    def _default_timeout(self) -> float:
        return float(tunnels.START_TIMEOUT)

    @default("host_alias")
    def _default_host_alias(self) -> str:
        return str(tunnels.DEFAULT_HOST_ALIAS)

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        self.on("post_run_cell", self._announce_new_addresses)

    def _announce_new_addresses(self, *_info: Any) -> None:
        """After each cell, announce any tunnel whose restarted agent got a new public address."""
        try:
            core.announce_new_tunnel_addresses()
        except Exception:  # never let a status check break the user's cell
            pass

    def tunnel_settings(self) -> tunnel_registry.TunnelSettings:
        """The ``%config TunnelMagics`` settings another service needs to open a tunnel (``%vnc --via``)."""
        options = {"relay": self.relay, "relay_host_key": self.relay_host_key,
                   "relay_known_hosts": self.relay_known_hosts, "relay_key_file": self.relay_key_file,
                   "server": self.frp_server, "ca_file": self.frp_ca_file, "server_name": self.frp_server_name}
        binaries = {agent.command: getattr(self, setting)
                    for setting, agent in tunnel_registry.binary_settings().items()}
        return tunnel_registry.TunnelSettings(options={k: v for k, v in options.items() if v},
                                              binaries={k: v for k, v in binaries.items() if v})

    def _binary(self, via: str) -> Optional[str]:
        return self.tunnel_settings().binary(via)

    def _options(self, args: Any) -> Dict[str, Any]:
        values = {
            "relay": args.relay or self.relay,
            "relay_host_key": args.relay_host_key or (None if args.relay_known_hosts else self.relay_host_key),
            "relay_known_hosts": args.relay_known_hosts or (None if args.relay_host_key else self.relay_known_hosts),
            "relay_key_file": args.relay_key_file or self.relay_key_file,
            "remote_port": tunnels.check_port(args.remote_port, "--remote-port") if args.remote_port else None,
            "server": args.server or self.frp_server,
            "domain": args.domain,
            "ca_file": args.frp_ca_file or self.frp_ca_file,
            "server_name": args.frp_server_name or self.frp_server_name,
            "hostname": args.hostname,
            "remote_addr": args.remote_addr,
        }
        return {k: v for k, v in values.items() if v not in (None, "")}

    def _announce_login_key(self, tunnel: Tunnel) -> None:
        note = display.relay_login_key_note(tunnel)
        if note:
            print(note)

    def _parse(self, chosen: MagicArgumentParser, words: List[str]) -> Optional[Any]:
        """Parse shell-style words (quotes removed, so --key 'ssh-ed25519 AAA... me' is one value)."""
        self.state  # noqa: B018 - make sure _colabmagic exists
        try:
            return chosen.parse_args(words)
        except SystemExit:
            return None

    @line_magic
    def tunnel(self, line: str = "") -> Any:
        try:
            words = arg_split(line, posix=True)
        except ValueError as exc:
            raise UsageError(f"%tunnel: {exc} (unbalanced quotes?)") from None
        if words and words[0] not in COMMANDS and not words[0].startswith("-"):
            args = self._parse(parsers().port, words)
            return None if args is None else self._expose(args)
        args = self._parse(parsers().main, words)
        if args is None:
            return None
        command = args.command or "list"
        if command == "ssh":
            return self._ssh(args)
        if command == "jupyter":
            return self._jupyter(args)
        if command == "stop":
            if not args.name and not args.all_tunnels:
                parsers().main.error("stop needs a tunnel name or --all")
            stopped = tunnels.stop_all() if args.all_tunnels else ([args.name] if tunnels.stop(args.name) else [])
            print("stopped: " + (", ".join(stopped) if stopped else "no such tunnel was running"))
            return None
        return self._list()

    def _ssh(self, args: Any) -> Tunnel:
        request = tunnels.SshRequest(
            port=tunnels.check_port(args.port, "--port") if args.port else (self.sshd_port or None),
            via=args.via, default_via=self.provider, options=self._options(args), settings=self.tunnel_settings(),
            keys=tuple(args.key), key_files=tuple(args.key_file), github=tuple(args.github),
            password=bool(args.password), user=args.user, default_user=self.ssh_user,
            env_names=tuple(dict.fromkeys(list(self.ssh_env) + list(args.env))),
            allow_forwarding=bool(args.allow_forwarding), identity=args.identity or self.identity or None,
            name=args.name or "ssh", host_alias=self.host_alias, timeout=self.timeout, offline=self.offline,
            folder=os.path.abspath(os.path.expanduser(args.folder)) if args.folder else os.getcwd(),
        )
        tunnel, server = tunnels.open_ssh(request, progress=self.progress("installing openssh-server"))
        self._announce_login_key(tunnel)
        shown = server.password.reveal() if (args.password and server.password) else None
        print(display.ssh_instructions(tunnel, server.fingerprint))
        url = tunnel.vscode_url()
        if url and display.in_notebook():
            from IPython.display import HTML
            from IPython.display import display as show

            show(HTML(display.link_html(url, "Open in VS Code (Remote-SSH)")))
        if shown:
            shown_once.show_secret(
                self.shell, f"Password for {server.user} (shown this once because you asked; key login still works): "
                f"{shown}", again=f"it is kept in {sshd.password_file()} (mode 0600) while sshd "
                "runs; `%tunnel ssh ... --password` again makes a new one")
        terms = core.hosted_colab_terms()
        if terms:
            print("\n" + terms)
        return tunnel

    def _expose(self, args: Any) -> Tunnel:
        via = args.via or self.provider
        port = tunnels.check_port(args.port, "PORT")
        config = tunnels.TunnelConfig(
            name=tunnels.check_name(args.name or str(port)), local_port=port, proto=args.proto,
            options=self._options(args), binary=self._binary(via), offline=self.offline,
        )
        tunnels.exposure.check_port_exposable(port, bool(args.force))
        tunnels.check(config, via)
        tunnel = tunnels.start(config, via, timeout=self.timeout)
        self._announce_login_key(tunnel)
        where = tunnel.public_url or f"{tunnel.public_host}:{tunnel.public_port}"
        print(f"127.0.0.1:{port} is reachable at {where} (via {via})")
        if display.is_quick_tunnel(tunnel):
            print(display.QUICK_TUNNEL_NOTE)
        if tunnels.nothing_listens(port):
            print(f"note: nothing listens on 127.0.0.1:{port} yet; the tunnel forwards to it once something does")
        return tunnel

    def _jupyter(self, args: Any) -> Tunnel:
        via = args.via or self.provider
        tunnel, lab = tunnels.start_jupyter(
            via, options=self._options(args), binary=self._binary(via),
            name=tunnels.check_name(args.name or "jupyter"), proto=args.proto,
            timeout=max(self.timeout, jupyter.START_TIMEOUT),
            insecure=bool(args.insecure), offline=self.offline,
        )
        self._announce_login_key(tunnel)
        where = tunnel.public_url or f"http://{tunnel.public_host}:{tunnel.public_port}/"
        print(f"JupyterLab (127.0.0.1:{lab.port}, root {lab.root_dir}) is reachable at {where}")
        if args.show_token and lab.token:
            shown_once.show_secret(
                self.shell, f"login URL (shown because you asked): {where.rstrip('/')}/lab?token={lab.token.reveal()}",
                again=f"`%tunnel jupyter --show-token` shows it again (the token is kept in {jupyter.token_file()})")
        else:
            print("it asks for a token: `%tunnel jupyter --show-token` prints the login URL "
                  f"(the token is kept in {jupyter.token_file()}, mode 0600)")
        return tunnel

    def _list(self) -> display.Table:
        rows: List[List[Any]] = []
        for t in tunnels.list_tunnels():
            public = t.public_url or (f"{t.public_host}:{t.public_port}" if t.public_host else None)
            rows.append([t.name, t.provider, t.local_port, public, t.status, t.restarts, t.pid])
        return display.Table(["name", "provider", "local port", "public address", "state", "restarts", "pid"],
                             rows, title="tunnels", empty="(no tunnels running)")


help_on_demand(TunnelMagics.tunnel, DESCRIPTION, lambda: "\n".join(
    p.format_help() for p in (parsers().main, parsers().ssh, parsers().port, parsers().jupyter, parsers().stop)))
