"""``_colabmagic``: the one state object in the kernel namespace.

It holds no process handles of its own: each attribute asks the service
layer, which reads the records under ``$COLABMAGIC_HOME`` and checks them
against /proc. So after ``%reset -f`` or a kernel restart, a rebuilt object
sees exactly the services that are still running.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any, List, Sequence

from .. import display

if TYPE_CHECKING:  # imported on first use: %load_ext does not pay for the supervisor's imports
    from ..system import supervisor

# attribute -> service module providing ``current()``
DOMAINS = {
    "sshd": "colabmagic.services.sshd",
    "tunnels": "colabmagic.services.tunnels",
    "vnc": "colabmagic.services.vnc",
    "aria2": "colabmagic.services.aria2",
    "drive": "colabmagic.services.drive",
}


class ColabMagicState:
    """What colabmagic runs in this machine: ``.sshd``, ``.tunnels``, ``.vnc``, ``.aria2``, ``.drive``."""

    def __getattr__(self, name: str) -> Any:
        module_name = DOMAINS.get(name)
        if module_name is None:
            raise AttributeError(name)
        if importlib.util.find_spec(module_name) is None:
            return {} if name == "tunnels" else None
        module = importlib.import_module(module_name)
        return module.current()

    @property
    def services(self) -> List[supervisor.Service]:
        from ..system import supervisor

        return supervisor.running()

    def status(self) -> display.Table:
        return status_table()

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.services) or "nothing running"
        return f"<colabmagic state: {names}>"


def status_table(drive_mountpoints: Sequence[str] = ()) -> display.Table:
    from ..system import supervisor
    from .records import Listing

    rows = []
    for svc in supervisor.running():
        listing = Listing.of(svc)
        public = listing.public()
        if listing.kind == "drive-background":  # drive/records.py's BackgroundRecord: its last sync
            syncer = importlib.import_module(DOMAINS["drive"] + ".background").current()
            public = syncer.summary() if syncer is not None else ""
        rows.append(
            [
                svc.name,
                svc.status,
                svc.pid,
                display.human_seconds(svc.uptime),
                svc.restarts,
                listing.address,
                public,
            ]
        )
    if importlib.util.find_spec(DOMAINS["drive"]) is not None:
        # A guarded Drive mountpoint is no service, but it is why `rm -rf ~/drive` says "not permitted".
        for mountpoint, note in importlib.import_module(DOMAINS["drive"]).guards(drive_mountpoints):
            rows.append(["drive mountpoint guard", "immutable", "", "", "", mountpoint, note])
    return display.Table(
        ["service", "status", "pid", "uptime", "restarts", "address", "public"],
        rows,
        title="colabmagic services",
        empty="(no services running)",
    )
