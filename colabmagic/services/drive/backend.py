"""``DriveBackend``: what a Drive backend does for a sync, declared once.

A sync (sync.py and its steps scan.py, flushing.py, verify.py), the
background syncer (background.py) and the status (status.py) use a backend
only through this interface. Two implement it: ``rclone.RcloneBackend``
(``rclone mount`` of any remote, flushed through rclone's API with the mount
up) and ``colab.ColabBackend`` (Colab's own mount, flushed by unmounting
it). What a sync must do differently for them is said by capabilities
(``stays_mounted``, ``reads_while_flushing``), never by the backend's name.
Optional methods have defaults here, so nothing is probed for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ...errors import ColabMagicError
from .config import DriveConfig

Progress = Callable[[float, str], None]
FileFacts = Tuple[int, Optional[str]]  # a file's size and checksum (hex; None when not computed)
MayUpload = Callable[[str], bool]  # whether a queued file may upload now (see DriveBackend.flush)


class FlushFailed(ColabMagicError):
    """Uploads kept failing: ``failures`` maps each file to the backend's reason."""

    def __init__(self, message: str, failures: Dict[str, str], details: Optional[List[str]] = None):
        super().__init__(message, details=details)
        self.failures = failures


class FlushTimeout(FlushFailed):
    """The flush (or the reading back from the remote) did not end in time: ``failures`` names what was
    still pending."""


class DriveBackend(ABC):
    """A mount of a remote that a sync can flush, and whose remote it can read back."""

    name: str = ""  # the DriveConfig.backend value that picks it
    stays_mounted: bool = False
    """The flush leaves the mount up. Then an interrupted flush brings the mount back at once, and
    ``--unmount`` stops the mount (``stop_mount``) only after the verification. Otherwise the flush
    unmounts, and the sync remounts after it (unless ``--unmount``)."""
    reads_while_flushing: bool = False
    """The changed files are read (hashed) through the mount while the flush uploads them, each one
    opened before its upload is started (``flush``'s ``ready``). Otherwise they are all read first."""

    def __init__(self, config: DriveConfig, progress: Optional[Progress] = None):
        self.config = config
        self.progress = progress
        # How the files were verified after all, when remote_files had to fall back (set by it).
        self.method_override = ""

    @property
    @abstractmethod
    def remote_label(self) -> str:
        """The remote as reports name it ("Google Drive (My Drive)", "gdrive:folder", a local folder)."""

    def skip(self) -> Sequence[str]:
        """Top-level names under the mountpoint that are not tracked (not files the user wrote)."""
        return ()

    @abstractmethod
    def mounted(self) -> bool:
        """Whether this backend's mount is up and answering at the mountpoint."""

    @abstractmethod
    def mount(self) -> None:
        """Mount at the mountpoint (callers ask ``mounted()`` first); raise ColabMagicError saying why not."""

    def remount(self) -> None:
        """Bring the mount back after a flush (or a mount that died)."""
        self.mount()

    def stop_mount(self) -> None:
        """Stop the mount, for ``--unmount`` once verified. Called only where ``stays_mounted``: a
        flush that unmounts leaves nothing to stop."""
        return None

    def pending_uploads(self) -> int:
        """Uploads still waiting or running (0 when the backend cannot tell): a sync with no changed
        file still flushes when there are some."""
        return 0

    def mount_pid(self) -> Optional[int]:
        """The mount's process, where colabmagic supervises one (for ``_colabmagic.drive``)."""
        return None

    @abstractmethod
    def flush(self, deadline: float, expected: Optional[Mapping[str, FileFacts]] = None,
              algo: Optional[str] = None, ready: Optional[MayUpload] = None) -> None:
        """Upload every pending write and return once the remote has it; raise FlushFailed naming the
        files that failed, FlushTimeout at ``deadline``.

        ``expected``: the changed files' (size, checksum), possibly still being read; ``algo`` the
        checksum in it. ``ready`` (given where ``reads_while_flushing``) says which files may upload
        now: those the sync holds open or has read.
        """

    @abstractmethod
    def hash_algo(self, deadline: float) -> Tuple[Optional[str], str]:
        """The checksum to verify with (None: size only) and how the report names the method."""

    def needs_mount_to_verify(self, algo: Optional[str]) -> bool:
        """Whether ``remote_files`` reads through the mount with this ``algo`` (then a sync that leaves
        it unmounted cannot verify)."""
        return False

    @abstractmethod
    def remote_files(self, rel_paths: Sequence[str], algo: Optional[str], deadline: float) -> Dict[str, FileFacts]:
        """(size, checksum) on the remote of each of ``rel_paths`` present there (absent: not listed).
        Raises FlushTimeout past ``deadline``."""


def backend_for(config: DriveConfig, progress: Optional[Progress] = None, credentials: Any = None) -> DriveBackend:
    """The backend ``config.backend`` names (``config`` resolved)."""
    # Imported here: both modules import this one.
    if config.backend == "colab":
        from .colab import ColabBackend

        return ColabBackend(config, progress, credentials)
    from .rclone import RcloneBackend

    return RcloneBackend(config, progress)
