"""``%vnc start | stop | status | password | screenshot``: a remote XFCE desktop, in a VNC viewer or the browser."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Optional

from IPython.core.magic import line_magic, magics_class
from traitlets import Float, Int, Unicode

from ..services.tunnel_registry import TunnelSettings, via_help
from . import shown_once
from .base import ColabMagicsBase, defaults_from, help_on_demand, lazy_import, make_parser

core = lazy_import("colabmagic.services.core")
vnc = lazy_import("colabmagic.services.vnc")

if TYPE_CHECKING:
    from ..services.vnc import VncDesktop

DESCRIPTION = "A remote XFCE desktop over VNC (loopback, password auth), optionally in the browser."


@functools.cache
def parsers() -> SimpleNamespace:
    """``%vnc``'s parsers, built on first use (building argparse parsers is most of an import's cost)."""
    main = make_parser("vnc", DESCRIPTION)
    sub = main.add_subparsers(dest="command", metavar="start|stop|status|password|screenshot")
    start = sub.add_parser("start", help="start the desktop (or reuse the running one)")
    start.add_argument("--geometry", default=None, help="screen size WIDTHxHEIGHT (default: VncMagics.geometry)")
    start.add_argument("--depth", type=int, default=None, help="colour depth 16, 24 or 32 (default: VncMagics.depth)")
    start.add_argument("--display", default=None, help="X display :N, VNC port 5900+N (default: VncMagics.display)")
    start.add_argument("--web", action="store_true", help="also serve noVNC, a VNC client in the browser")
    start.add_argument("--via", default=None, help="expose through this tunnel provider: " + via_help())
    start.add_argument("--insecure", action="store_true", help="allow a provider whose public side is not "
                       "encrypted (frp, the ssh relay, ngrok tcp): the VNC password and screen cross in clear")
    start.add_argument("--gpu", action="store_true", help="OpenGL on the NVIDIA GPU through VirtualGL (vglrun)")
    sub.add_parser("stop", help="stop the desktop (web client, session, X server)")
    sub.add_parser("status", help="the running desktop")
    sub.add_parser("password", help="show the VNC password (only here)")
    shot = sub.add_parser("screenshot", help="show the desktop inline as a PNG")
    shot.add_argument("--save", default=None, metavar="FILE", help="also write the PNG to FILE")
    return SimpleNamespace(main=main, start=start, shot=shot)

@magics_class
class VncMagics(ColabMagicsBase):
    """``%vnc``: start, stop and look at a remote XFCE desktop."""

    # Defaults: VncConfig's (services/vnc), read on first use.
    geometry = Unicode(help="Screen size of the desktop, WIDTHxHEIGHT.").tag(config=True)
    depth = Int(help="Colour depth of the desktop (16, 24 or 32).").tag(config=True)
    display = Unicode(help="X display of the desktop; its VNC port is 5900 + N.").tag(config=True)
    web_port = Int(help="Loopback port of the noVNC web client (0: a free port).").tag(config=True)
    provider = Unicode("", help="Tunnel provider used by --web when --via is not given (empty: none).").tag(
        config=True)
    start_timeout = Float(help="Seconds each step (X server, session, web client) may take to be ready.").tag(
        config=True)
    locals().update(defaults_from("colabmagic.services.vnc:VncConfig", "geometry", "depth", "display", "web_port",
                                  start_timeout="timeout"))

    def __init__(self, shell: Any = None, tunnel_settings: Callable[[], TunnelSettings] = TunnelSettings,
                 **kwargs: Any):
        """``tunnel_settings`` gives ``%config TunnelMagics``' provider settings at call time (load wires it)."""
        super().__init__(shell=shell, **kwargs)
        self._tunnel_settings = tunnel_settings

    @line_magic
    def vnc(self, line: str = "") -> Any:
        args = self.parse(parsers().main, line)
        if args is None:
            return None
        command = args.command or "status"
        if command == "start":
            return self._start(args)
        if command == "stop":
            stopped = vnc.stop()
            print("stopped the desktop" if stopped else "no desktop was running")
            return None
        if command == "password":
            secret = vnc.password()
            if secret is None:
                print("no VNC password yet: %vnc start makes one")
                return None
            shown_once.show_secret(self.shell, f"VNC password: {secret.reveal()}",
                                   again="`%vnc password` shows it again")
            return None
        if command == "screenshot":
            from IPython.display import Image

            return Image(data=vnc.screenshot(save=args.save), format="png")
        desktop = vnc.current()
        if desktop is None:
            print("no desktop is running (start one with %vnc start)")
        return desktop

    def _start(self, args: Any) -> VncDesktop:
        via = args.via if args.via is not None else (self.provider or None)
        config = vnc.VncConfig(
            geometry=args.geometry or self.geometry,
            depth=args.depth if args.depth is not None else self.depth,
            display=args.display or self.display,
            web=bool(args.web),
            web_port=self.web_port,
            via=via if (args.web or args.via) else None,
            gpu=bool(args.gpu),
            timeout=self.start_timeout,
            insecure=bool(args.insecure),
            tunnel=self._tunnel_settings(),
            offline=self.offline,
        )
        desktop = vnc.start(config, progress=self.progress("VNC desktop"),
                            install_progress=self.progress("installing the desktop's packages"))
        if args.web and not config.via and core.on_hosted_colab() and desktop.public_url:
            self._show_in_notebook(desktop.public_url)
        return desktop

    def _show_in_notebook(self, url: str) -> Optional[Any]:
        """On hosted Colab, the noVNC page through Colab's port proxy, inside the cell output."""
        from IPython.display import IFrame, display

        frame = IFrame(url, width="100%", height=720)
        display(frame)
        return frame


help_on_demand(VncMagics.vnc, DESCRIPTION, lambda: parsers().main.format_help() + "\n".join(
    p.format_help() for p in (parsers().start, parsers().shot)))
