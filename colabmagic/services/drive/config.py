"""``DriveConfig``: the plain settings a sync runs with, built from ``%config DriveMagics`` traits."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, Tuple

from ...errors import BadInputError
from ...system import environment

DURATION = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)?$")
BWLIMIT = re.compile(r"^[0-9][0-9.]*[BKMGTP]?(:[0-9][0-9.]*[BKMGTP]?)?$|^off$")
DEFAULT_COLAB_MOUNTPOINT = "/content/drive"
DEFAULT_MOUNTPOINT = "~/drive"
MAX_PATH = 1024


def _short(value: str) -> str:
    """A value as it can be shown in a one-line error: quoted, and cut when long."""
    return repr(value if len(value) <= 60 else value[:40] + "...")


@dataclass(frozen=True)
class DriveConfig:
    """What to mount where, how long a sync may take, and how rclone runs.

    ``backend``: "colab" (google.colab.drive) or "rclone"; "" picks colab on
    hosted Colab, else rclone. ``remote``: an rclone remote ("gdrive:folder",
    "s3:bucket/dir") or a local folder. ``credentials``: a service-account
    JSON file, or "google-auth" for the notebook's google-auth credentials,
    for a Google Drive remote we configure ourselves.
    """

    backend: str = ""
    mountpoint: str = ""
    remote: str = ""
    timeout: float = 600.0
    write_back: str = "5s"
    rclone: str = ""
    rclone_config: str = ""
    credentials: str = ""
    bwlimit: str = ""
    verify: bool = True
    drive_api_root: str = "https://www.googleapis.com"
    mount_timeout: float = 120.0
    track: str = ""  # comma-separated subfolders of the mountpoint to track; "" = all of it
    offline: bool = False  # contact no Drive API beyond loopback (COLABMAGIC_OFFLINE does the same)

    def resolved(self) -> DriveConfig:
        """The same settings with the defaults decided and every value checked."""
        backend = self.backend or ("colab" if environment.is_hosted_colab() else "rclone")
        if backend not in ("colab", "rclone"):
            raise BadInputError(f"unknown Drive backend {backend!r} (use colab or rclone)")
        mountpoint = self.mountpoint or (DEFAULT_COLAB_MOUNTPOINT if backend == "colab" else DEFAULT_MOUNTPOINT)
        mountpoint = os.path.abspath(os.path.expanduser(mountpoint))
        for name, value in (("mountpoint", mountpoint), ("remote", self.remote)):
            if value.startswith("-") or any(c in value for c in "\n\r\x00"):
                raise BadInputError(f"refusing {name} {_short(value)}: it must not start with - or hold control characters")
            if len(value) > MAX_PATH or any(len(part) > 255 for part in value.split("/")):
                raise BadInputError(f"refusing {name} {_short(value)}: too long")
        if mountpoint == "/":
            raise BadInputError("the mountpoint cannot be /")
        if not DURATION.match(self.write_back):
            raise BadInputError(f"write_back must be a duration such as 5s or 10m, not {_short(self.write_back)}")
        if self.bwlimit and not BWLIMIT.match(self.bwlimit):
            raise BadInputError(f"bwlimit must look like 10M or 1M:512K, not {_short(self.bwlimit)}")
        if self.timeout <= 0:
            raise BadInputError("timeout must be positive (seconds)")
        if backend == "rclone" and not self.remote:
            raise BadInputError(
                "no rclone remote set: %config DriveMagics.remote = '/some/folder' or 'gdrive:folder' "
                "(or pass --remote)"
            )
        track = []
        for part in (p.strip().strip("/") for p in self.track.split(",")):
            if not part:
                continue
            if part.startswith("-") or ".." in part.split("/") or "\n" in part:
                raise BadInputError(f"track must name subfolders of the mountpoint, not {_short(part)}")
            track.append(part)
        return DriveConfig(
            track=",".join(track),
            backend=backend,
            mountpoint=mountpoint,
            remote=self.remote,
            timeout=float(self.timeout),
            write_back=self.write_back,
            rclone=self.rclone,
            rclone_config=os.path.expanduser(self.rclone_config) if self.rclone_config else "",
            credentials=self.credentials,
            bwlimit=self.bwlimit,
            verify=self.verify,
            drive_api_root=self.drive_api_root.rstrip("/"),
            mount_timeout=self.mount_timeout,
            offline=self.offline,
        )

    @property
    def key(self) -> str:
        """Which snapshot belongs to this mount: backend, remote and mountpoint."""
        return f"{self.backend}|{self.remote}|{self.mountpoint}|{self.track}"

    @property
    def tracked(self) -> Tuple[str, ...]:
        return tuple(p for p in self.track.split(",") if p)

    def with_(self, **changes: Any) -> DriveConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
