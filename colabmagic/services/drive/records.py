"""What Drive's two services record about themselves (their ``Service.info``), typed (see services/records.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..records import Record


@dataclass(frozen=True)
class MountRecord(Record):
    """The rclone mount: where it is mounted, what from, and its remote-control API's port."""

    GROUP = "drive"

    rc_port: int = 0
    mountpoint: str = ""
    remote: str = ""  # as shown: "Google Drive:FOLDER", or the rclone remote

    def loopback_port(self) -> int:
        return self.rc_port


@dataclass(frozen=True)
class BackgroundRecord(Record):
    """The background syncer (``%drive_sync --every``): what it syncs and how often."""

    GROUP = "drive"
    KIND = "drive-background"  # %colabmagic status shows its last sync in the public column

    interval: float = 0.0  # seconds
    mountpoint: str = ""
    track: str = ""  # the subfolder it limits the sync to ("" for the whole mountpoint)

    def listed_address(self) -> str:
        return self.mountpoint
