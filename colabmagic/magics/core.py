"""``%colabmagic status | stop | logs | doctor``: one place to look."""

from __future__ import annotations

import functools
from typing import Any, Callable, List

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser

from ..state import status_table
from .base import ColabMagicsBase, get_state, help_on_demand, lazy_import, make_parser

core = lazy_import("colabmagic.services.core")
events = lazy_import("colabmagic.services.events")

DESCRIPTION = "Inspect and control every service colabmagic runs."


@functools.cache
def parser() -> MagicArgumentParser:
    """``%colabmagic``'s parser, built on first use (building argparse parsers is most of an import's cost)."""
    main = make_parser("colabmagic", DESCRIPTION)
    sub = main.add_subparsers(dest="command", metavar="status|stop|logs|doctor")
    sub.add_parser("status", help="every service, its health, pid, uptime, addresses")
    stop = sub.add_parser("stop", help="stop a service (or a group such as vnc) or --all")
    stop.add_argument("name", nargs="?", default="")
    stop.add_argument("--all", action="store_true", dest="all_services")
    logs = sub.add_parser("logs", help="the last lines of a service's log")
    logs.add_argument("name")
    logs.add_argument("-n", type=int, default=40, dest="lines")
    sub.add_parser("doctor", help="root or sudo, apt, free disk, GPU, hosted Colab")
    return main

@magics_class
class ColabMagics(ColabMagicsBase):
    """``%colabmagic``: status, stop, logs and doctor for every colabmagic service."""

    def __init__(self, shell: Any = None, drive_mountpoints: Callable[[], List[str]] = list, **kwargs: Any):
        """``drive_mountpoints`` gives ``%config DriveMagics.mountpoint`` for the status table (load wires it)."""
        super().__init__(shell=shell, **kwargs)
        self._drive_mountpoints = drive_mountpoints
        # Rebuild ``_colabmagic`` before each cell, so ``%reset -f`` never leaves it missing.
        self.on("pre_run_cell", self._rebuild_state)
        # After each cell, the events recorded since (services/events.py); what happened before this
        # kernel loaded colabmagic is not replayed.
        self._events_offset = events.end_offset()
        self.on("post_run_cell", self._show_events)

    def _rebuild_state(self, *_info: Any) -> None:
        get_state(self.shell)

    def _show_events(self, *_info: Any) -> None:
        try:
            lines, self._events_offset = events.unseen(self._events_offset)
        except Exception:  # never let a look at the events break the user's cell
            return
        for line in lines:
            print(line)

    @line_magic
    def colabmagic(self, line: str = "") -> Any:
        args = self.parse(parser(), line)
        if args is None:
            return None
        command = args.command or "status"
        if command == "status":
            return status_table(drive_mountpoints=self._drive_mountpoints())
        if command == "stop":
            if not args.name and not args.all_services:
                parser().error("stop needs a service name or --all")
            stopped = core.stop(args.name, args.all_services)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
            return None
        if command == "logs":
            print(core.logs(args.name, args.lines))
            return None
        return core.doctor(offline=self.offline)


help_on_demand(ColabMagics.colabmagic, DESCRIPTION, lambda: parser().format_help())
