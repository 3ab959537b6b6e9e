"""The colab backend: Colab's own Drive mount (``google.colab.drive``), flushed under our timeout.

``flush_and_unmount`` can block for up to a day; it runs in a thread with
a timeout handed to it too, while the kernel's main thread polls (so an
interrupt works). Remounting uses ``force_remount=True``. Checksums come
from the Drive API (``files.list`` with ``md5Checksum``) through
google-auth credentials where the user has authenticated; without them the
check is by size through the remounted Drive, and the report says so.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ...errors import ColabMagicError
from ...system import paths
from . import tracking, writers
from .backend import DriveBackend, FileFacts, FlushFailed, FlushTimeout, MayUpload, Progress
from .config import DriveConfig

MY_DRIVE = "MyDrive"
# What to do about google.colab.drive.mount's ValueErrors (colabtools google/colab/drive.py).
_MOUNT_ADVICE = {
    "Mountpoint must not already contain files": " (empty that folder or choose another --path)",
    "Mountpoint must not contain a space.": " (choose a --path without spaces)",
    "Mountpoint must not be a symlink": " (choose a real folder as --path)",
    "Mountpoint must either be a directory or not exist": " (a file is in the way: choose another --path)",
    "Mountpoint must be in a directory that exists": " (create the parent folder first)",
    "mount failed": " (DriveFS did not start; Runtime > Restart session, then run again)",
}
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive.metadata.readonly"
FOLDER = "application/vnd.google-apps.folder"


def colab_drive() -> Any:
    try:
        from google.colab import drive  # type: ignore[import-not-found]
    except ImportError:
        raise ColabMagicError(
            "google.colab is not available here; the colab backend works on hosted Colab only "
            "(use --backend rclone with a remote)"
        )
    return drive


def default_credentials() -> Tuple[Any, str]:
    """google-auth credentials able to read Drive metadata, or (None, why not)."""
    try:
        import google.auth
    except ImportError:
        return None, "google-auth is not installed"
    try:
        creds, _project = google.auth.default(scopes=[DRIVE_SCOPE])
    except Exception as err:
        return None, f"no Google credentials ({type(err).__name__}); run google.colab.auth.authenticate_user()"
    return creds, ""


def _auth_request() -> Any:
    try:
        import google.auth.transport.requests

        return google.auth.transport.requests.Request()
    except ImportError:
        import google.auth.transport.urllib3
        import urllib3

        return google.auth.transport.urllib3.Request(urllib3.PoolManager())


class DriveApi:
    """The few Drive v3 ``files.list`` calls needed to find a file by path and read its md5 and size."""

    def __init__(self, credentials: Any, root: str, timeout: float = 30.0):
        self.credentials = credentials
        self.root = root.rstrip("/")
        self.timeout = timeout
        self._children: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
        self._request: Any = None

    def _get(self, params: Dict[str, str]) -> Dict[str, Any]:
        url = f"{self.root}/drive/v3/files?{urllib.parse.urlencode(params)}"
        headers: Dict[str, str] = {}
        if self._request is None:
            self._request = _auth_request()
        self.credentials.before_request(self._request, "GET", url, headers)
        req = urllib.request.Request(url, headers=headers, method="GET")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - API root is a setting
            return json.loads(resp.read().decode())

    def children(self, folder_id: str) -> Dict[str, List[Dict[str, Any]]]:
        """name -> the files with that name in a folder (Drive allows duplicates), newest first."""
        if folder_id in self._children:
            return self._children[folder_id]
        escaped = folder_id.replace("\\", "\\\\").replace("'", "\\'")
        params = {
            "q": f"'{escaped}' in parents and trashed = false",
            "fields": "nextPageToken, files(id, name, mimeType, md5Checksum, size, modifiedTime)",
            "pageSize": "1000",
            "spaces": "drive",
        }
        found: Dict[str, List[Dict[str, Any]]] = {}
        while True:
            page = self._get(params)
            for item in page.get("files", []):
                found.setdefault(item["name"], []).append(item)
            token = page.get("nextPageToken")
            if not token:
                break
            params["pageToken"] = token
        for items in found.values():
            items.sort(key=lambda i: i.get("modifiedTime", ""), reverse=True)
        self._children[folder_id] = found
        return found

    def lookup(self, path: str) -> Optional[Dict[str, Any]]:
        """The file at ``path`` (relative to My Drive), or None."""
        parts = [p for p in path.split("/") if p]
        folder = "root"
        for i, name in enumerate(parts):
            items = self.children(folder).get(name, [])
            if i == len(parts) - 1:
                files = [it for it in items if it.get("mimeType") != FOLDER]
                return files[0] if files else None
            folders = [it for it in items if it.get("mimeType") == FOLDER]
            if not folders:
                return None
            folder = folders[0]["id"]
        return None


class ColabBackend(DriveBackend):
    """``google.colab.drive``: mount, flush_and_unmount under our timeout, remount with force.

    Its flush unmounts (``stays_mounted`` is False): the sync reads the changed files
    first, and remounts after. DriveFS does not say what is pending (``pending_uploads``
    stays 0), so a sync with tracked changes always flushes."""

    name = "colab"
    remote_label = "Google Drive (My Drive)"

    def __init__(self, config: DriveConfig, progress: Optional[Progress] = None, credentials: Any = None):
        super().__init__(config, progress)
        self.credentials = credentials

    def skip(self) -> Sequence[str]:
        """Only My Drive is tracked; shortcuts, revisions and shared drives are not files we wrote."""
        try:
            return [n for n in os.listdir(self.config.mountpoint) if n != MY_DRIVE]
        except OSError:
            return ()

    def mounted(self) -> bool:
        mp = self.config.mountpoint
        return tracking.is_mounted(mp) and os.path.isdir(os.path.join(mp, MY_DRIVE))

    def mount(self, force: bool = False) -> None:
        drive = colab_drive()
        writers.unguard(self.config.mountpoint)
        try:
            drive.mount(self.config.mountpoint, force_remount=force,
                        timeout_ms=int(self.config.mount_timeout * 1000))
        except NotImplementedError as err:
            # google.colab is there, but not hosted Colab's Drive (Kaggle, Colab Enterprise, a local runtime).
            raise ColabMagicError(f"Colab's Drive mount does not work here ({err}); use --backend rclone "
                                  "with a remote (%config DriveMagics.remote)") from None
        except ValueError as err:
            raise ColabMagicError(f"google.colab.drive.mount could not mount {self.config.mountpoint}: {err}"
                                  + _MOUNT_ADVICE.get(str(err).split(":")[0], "")) from None
        except Exception as err:
            if type(err).__name__ != "MessageError":
                raise
            # The browser answered the Drive access request with an error: the user declined, or no UI.
            raise ColabMagicError(f"Drive access was not granted in the browser ({err}); run the cell again "
                                  "from the Colab tab and allow access in the pop-up") from None

    def remount(self) -> None:
        self.mount(force=True)

    def flush(self, deadline: float, expected: Optional[Mapping[str, FileFacts]] = None,
              algo: Optional[str] = None, ready: Optional[MayUpload] = None) -> None:
        """Run flush_and_unmount in a thread; return when it has, or raise at the deadline.
        (``expected``, ``algo`` and ``ready`` serve rclone's flush; Colab's flushes everything.)"""
        drive = colab_drive()
        if not tracking.is_mounted(self.config.mountpoint):
            # flush_and_unmount would print "Drive not mounted, so nothing to flush" and return as if done.
            raise FlushFailed(f"Drive is not mounted at {self.config.mountpoint} (DriveFS stopped?), so writes "
                              "since the last sync could not be flushed; check the remounted Drive", {})
        remaining = max(1.0, deadline - time.monotonic())
        outcome: Dict[str, BaseException] = {}

        def run() -> None:
            try:
                # A little longer than ours, so our deadline (and its clear error) comes first.
                drive.flush_and_unmount(timeout_ms=int((remaining + 5) * 1000))
            except BaseException as err:  # handed to the waiting thread
                outcome["error"] = err

        worker = threading.Thread(target=run, name="colabmagic-drive-flush", daemon=True)
        started = time.monotonic()
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
            if self.progress is not None:
                self.progress(min(0.99, (time.monotonic() - started) / remaining), "flush_and_unmount")
            if time.monotonic() > deadline and worker.is_alive():
                # The real flush got the same timeout and stops soon after; give it a moment to.
                worker.join(10.0)
                raise FlushTimeout("google.colab.drive.flush_and_unmount did not finish within the timeout", {})
        if "error" in outcome:
            if isinstance(outcome["error"], NotImplementedError):  # where /var/colab/mp exists
                raise FlushFailed(f"google.colab.drive.flush_and_unmount does not work here ({outcome['error']}); "
                                  "use --backend rclone", {})
            if time.monotonic() >= deadline:  # it gave up because its timeout (ours) ran out
                raise FlushTimeout(f"google.colab.drive.flush_and_unmount did not finish within the timeout "
                                   f"({outcome['error']})", {})
            raise FlushFailed(f"google.colab.drive.flush_and_unmount failed: {outcome['error']}", {})

    def _creds(self) -> Tuple[Any, str]:
        if self.credentials is not None:
            return self.credentials, ""
        return default_credentials()

    def hash_algo(self, deadline: float) -> Tuple[Optional[str], str]:
        host = urllib.parse.urlparse(self.config.drive_api_root).hostname or ""
        if paths.offline(self.config.offline) and host not in ("127.0.0.1", "::1", "localhost"):
            return None, "size only (offline mode: the Drive API is not contacted)"
        creds, why = self._creds()
        if creds is None:
            return None, f"size only ({why})"
        return "md5", "md5Checksum from the Drive API"

    def needs_mount_to_verify(self, algo: Optional[str]) -> bool:
        return algo is None  # sizes are read through the remounted Drive

    def remote_files(self, rel_paths: Sequence[str], algo: Optional[str], deadline: float) -> Dict[str, FileFacts]:
        found: Dict[str, FileFacts] = {}
        if algo is None:
            for rel in rel_paths:
                full = os.path.join(self.config.mountpoint, rel)
                if os.path.isfile(full):
                    found[rel] = (os.path.getsize(full), None)
            return found
        creds, _why = self._creds()
        api = DriveApi(creds, self.config.drive_api_root, timeout=max(1.0, min(30.0, deadline - time.monotonic())))
        for rel in rel_paths:
            if time.monotonic() > deadline:
                raise FlushTimeout("reading checksums from the Drive API took longer than the timeout", {})
            if not rel.startswith(MY_DRIVE + "/"):
                continue
            try:
                item = api.lookup(rel[len(MY_DRIVE) + 1:])
            except (urllib.error.HTTPError, urllib.error.URLError) as err:
                code = getattr(err, "code", None) or getattr(err, "reason", err)
                self.method_override = f"size only (the Drive API refused the listing: {code})"
                return self.remote_files(rel_paths, None, deadline)
            if item is not None:
                found[rel] = (int(item.get("size", -1)), item.get("md5Checksum"))
        return found
