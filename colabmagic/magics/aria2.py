"""``%aria2``: offline downloads (HTTP, FTP, magnet, torrent, metalink) through a supervised aria2 daemon."""

from __future__ import annotations

import functools
import threading
import time
from types import SimpleNamespace
from typing import Any, List, Optional

from IPython.core.magic import line_magic, magics_class
from IPython.utils.process import arg_split
from traitlets import Bool, Float, Int, Unicode, default
from traitlets import List as TList

from . import shown_once
from .base import ColabMagicsBase, defaults_from, help_on_demand, make_parser, subcommand_help

DESCRIPTION = "Download files in the background with aria2 (survives cell and kernel restarts)."


@functools.cache
def parsers() -> SimpleNamespace:
    """``%aria2``'s parsers, built on first use (building argparse parsers is most of an import's cost)."""
    parser = make_parser("aria2", DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="start|add|status|pause|resume|remove|trackers|rpc|stop")
    start = sub.add_parser("start", help="start (or restart with new settings) the aria2 daemon")
    start.add_argument("--dir", default=None, help="default download folder")
    start.add_argument("--max-concurrent", type=int, default=None, dest="max_concurrent")
    add = sub.add_parser("add", help="queue URLs, magnet links, .torrent or .metalink files")
    add.add_argument("sources", nargs="+", metavar="URI|FILE")
    add.add_argument("--dir", default=None, help="target folder (a Drive folder is staged locally first)")
    add.add_argument("--out", default=None, help="file name inside the target folder")
    add.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    add.add_argument("--user-agent", default=None, dest="user_agent")
    add.add_argument("--seed-time", type=float, default=None, dest="seed_time", help="minutes to seed")
    add.add_argument("--wait", action="store_true", help="block with a progress bar until done")
    status = sub.add_parser("status", help="a table of downloads")
    status.add_argument("gid", nargs="?", default=None)
    status.add_argument("--watch", action="store_true", help="keep the table live (does not block)")
    for name, text in (("pause", "pause a download or --all"), ("resume", "resume a download or --all"),
                       ("remove", "remove a download or --all (files already written stay)")):
        one = sub.add_parser(name, help=text)
        one.add_argument("gid", nargs="?", default=None)
        one.add_argument("--all", action="store_true", dest="all_downloads")
    trackers = sub.add_parser("trackers", help="the cached public tracker list")
    trackers.add_argument("--update", action="store_true", help="fetch a fresh public list (not offline)")
    sub.add_parser("rpc", help="how to use AriaNg or a browser extension through the SSH tunnel")
    sub.add_parser("stop", help="stop the daemon (the queue is kept in the session file)")
    # An empty parser: calling the base class's parse with it makes sure the state object exists.
    quoting_probe = make_parser("aria2", "")
    return SimpleNamespace(main=parser, start=start, add=add, status=status, trackers=trackers,
                           quoting_probe=quoting_probe)


class StatusWatch:
    """A background thread that keeps one ``%aria2 status`` output live until nothing is pending."""

    def __init__(self, aria2: Any, gid: Optional[str], interval: float = 1.0, timeout: float = 3600.0):
        from IPython.display import display

        self.aria2 = aria2
        self.gid = gid
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self.handle = display(aria2.status(gid), display_id=True)
        self.thread = threading.Thread(target=self._run, name="aria2-status-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # aria2's own events (a download completing, failing, pausing) refresh the table at once;
        # between them it refreshes every ``interval`` for the progress.
        end = time.monotonic() + self.timeout
        with self.aria2.notifications() as events:
            while not self._stop.is_set() and time.monotonic() < end:
                events.wait(self.interval)
                if self._stop.is_set():
                    break
                try:
                    table = self.aria2.status(self.gid)
                    self.handle.update(table)
                    if not self.aria2.pending():
                        break
                except Exception:
                    break

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def __repr__(self) -> str:
        return f"<aria2 status watch {'running' if self.running else 'finished'}>"


@magics_class
class Aria2Magics(ColabMagicsBase):
    """``%aria2``: background downloads with aria2 (settings: ``%config Aria2Magics``)."""

    # Defaults: Aria2Config's (services/aria2/daemon.py), read on first use.
    download_dir = Unicode(help="Default download folder ('' = /kaggle/working/downloads on Kaggle, /content/downloads on Colab, else ~/Downloads).").tag(config=True)
    max_concurrent = Int(help="Downloads that run at the same time.").tag(config=True)
    dht = Bool(help="BitTorrent DHT (always off in offline mode).").tag(config=True)
    lpd = Bool(help="BitTorrent Local Peer Discovery (always off in offline mode).").tag(config=True)
    seed_time = Float(help="Minutes to seed a finished torrent (0 = stop at once).").tag(config=True)
    public_trackers = Bool(help="Add the cached public tracker list (`%aria2 trackers --update`) to torrents; never in offline mode.").tag(config=True)
    trackers = TList(Unicode(), help="Extra tracker URLs added to every torrent.").tag(config=True)
    trackers_url = Unicode(
        help="Where `%aria2 trackers --update` fetches the public tracker list.",
    ).tag(config=True)
    allow_bittorrent_on_colab = Bool(
        help="Allow magnets and torrents on hosted Colab (its terms forbid P2P there).",
    ).tag(config=True)
    rpc_port = Int(help="RPC port on 127.0.0.1 (0 = 6800 if free, else any free port).").tag(config=True)
    max_download_limit = Unicode(help="Per-download speed limit, e.g. '2M' (0 = none).").tag(config=True)
    rpc_allow_origin_all = Bool(
        help="Let web UIs (AriaNg) call the RPC from any browser page (off by default: any page "
        "you open could then try the RPC; the secret still guards it).",
    ).tag(config=True)
    locals().update(defaults_from(
        "colabmagic.services.aria2.daemon:Aria2Config", "download_dir", "max_concurrent", "dht", "lpd", "seed_time",
        "public_trackers", "trackers", "allow_bittorrent_on_colab", "rpc_port", "max_download_limit",
        "rpc_allow_origin_all"))

    @default("trackers_url")
    def _default_trackers_url(self) -> str:
        from ..services.aria2.daemon import PUBLIC_TRACKERS_URL

        return PUBLIC_TRACKERS_URL

    def settings(self, dir: Optional[str] = None, max_concurrent: Optional[int] = None) -> Any:
        from ..services.aria2 import Aria2Config

        return Aria2Config(
            download_dir=dir or self.download_dir,
            max_concurrent=max_concurrent or self.max_concurrent,
            dht=self.dht,
            lpd=self.lpd,
            seed_time=self.seed_time,
            public_trackers=self.public_trackers,
            trackers=tuple(self.trackers),
            allow_bittorrent_on_colab=self.allow_bittorrent_on_colab,
            rpc_port=self.rpc_port,
            max_download_limit=self.max_download_limit,
            rpc_allow_origin_all=self.rpc_allow_origin_all,
            offline=self.offline,
        )

    def parse_posix(self, line: str) -> Any:
        """Parse with shell quoting (``--header "Cookie: a=b"`` is one value, without its quotes)."""
        self.parse(parsers().quoting_probe, "")
        try:
            return parsers().main.parse_args(arg_split(line, posix=True))
        except SystemExit:
            return None
        except ValueError as exc:  # an unbalanced quote
            parsers().main.error(str(exc))

    @line_magic
    def aria2(self, line: str = "") -> Any:
        from ..services import aria2 as service

        args = self.parse_posix(line)
        if args is None:
            return None
        command = args.command or "status"
        if command == "stop":
            print("aria2 stopped" if service.stop() else "aria2 was not running")
            return None
        if command == "trackers":
            return self._trackers(service, args.update)
        if command in ("pause", "resume", "remove") and not args.gid and not args.all_downloads:
            parsers().main.error(f"{command} needs a download id or --all")
        _check_values(command, args)
        if command == "start":
            daemon = service.start(self.settings(args.dir, args.max_concurrent), progress=self.progress("aria2"))
            print(("aria2 already running at " if daemon.service.reused else "aria2 started at ")
                  + daemon.address)
            return daemon
        daemon = service.ensure(self.settings(), progress=self.progress("aria2"))
        if command == "add":
            added = daemon.add(args.sources, dir=args.dir, out=args.out, headers=args.header,
                               user_agent=args.user_agent, seed_time=args.seed_time,
                               allow_bittorrent=service.daemon.bittorrent_allowed(self.settings()))
            if args.wait:
                try:
                    added = daemon.wait(added, progress=self.progress("aria2 download"))
                except KeyboardInterrupt:
                    print("interrupted: the downloads go on in the background (%aria2 status)")
            return added[0] if len(added) == 1 else added
        if command == "status":
            if args.watch:
                return StatusWatch(daemon, args.gid)
            return daemon.status(args.gid)
        if command == "rpc":
            shown_once.show_secret(self.shell, daemon.rpc_card(), again="`%aria2 rpc` shows it again")
            return None
        gid = None if args.all_downloads else args.gid
        done: List[str] = getattr(daemon, command)(gid)
        print(f"{command}: " + (", ".join(done) if done else "nothing to do"))
        return None

    def _trackers(self, service: Any, update: bool) -> Any:
        from .. import display

        if update:
            found = service.update_trackers(self.trackers_url, offline=self.offline)
            daemon = service.current()
            if daemon is not None and self.public_trackers:
                daemon.set_trackers(list(self.trackers) + [t for t in found if t not in self.trackers])
        else:
            found = service.cached_trackers()
        return display.Table(["tracker"], [[t] for t in found], title="public trackers (cached)",
                             empty="(no cached list: %aria2 trackers --update, not in offline mode)")


def _check_values(command: str, args: Any) -> None:
    """Refuse bad values before the daemon is started (spec 7: bad input starts nothing)."""
    from ..services.aria2 import validate

    if command == "start" and args.max_concurrent is not None and not 1 <= args.max_concurrent <= 1000:
        parsers().main.error(f"--max-concurrent must be a number from 1 to 1000, not '{args.max_concurrent}'")
    if command == "add":
        validate.sources(args.sources)
        validate.out_name(args.out)
        validate.headers(args.header)
        validate.user_agent(args.user_agent)
        validate.seed_time(args.seed_time)
        if args.dir is not None:
            validate.directory(args.dir)
    if command in ("status", "pause", "resume", "remove") and getattr(args, "gid", None):
        validate.gid(args.gid)


help_on_demand(Aria2Magics.aria2, DESCRIPTION, lambda: parsers().main.format_help() + "\n" + subcommand_help(
    [parsers().start, parsers().add, parsers().status, parsers().trackers]
))
