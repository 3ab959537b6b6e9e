"""The rclone backend: ``rclone mount`` of any remote with a write-back cache, flushed and verified.

The mount runs supervised in the foreground with its remote-control API on
loopback (basic auth from a 0600 file, never on the command line) and its
cache under ``$COLABMAGIC_HOME/drive/cache``. A flush stops the mount
(rclone keeps files not yet uploaded in its cache, marked dirty) and starts
a second rclone on the same cache with a write-back delay of zero on a
private folder, so every pending upload starts at once while nothing can
write under the user's mountpoint; it waits for the upload queue to drain
(``vfs/stats``) and for no cached file to be dirty. Verification reads
sizes and checksums from the remote itself with ``rclone lsjson``.
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
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ...errors import ColabMagicError, ServiceError
from ...system import installer, paths, probes, procfs, secrets, supervisor
from . import tracking, writers
from .config import DriveConfig

MOUNT_SERVICE = "drive-rclone"
LAUNCHER = str(Path(__file__).with_name("launch.py"))
FLUSH_SERVICE = "drive-flush"
RC_USER = "colabmagic"
HASH_PREFERENCE = ("sha256", "md5", "sha1", "crc32")
RELEASE_WAIT = 10.0  # seconds a sync waits for rclone to take files just closed
FAIL_AFTER_TRIES = 3  # an upload that failed this often, with nothing else in flight, is reported
UPLOAD_FAILED = re.compile(
    r"ERROR : (?P<name>.+?): vfs cache: failed to upload try #(?P<try>\d+), will retry in \S+: (?P<why>.*)$"
)
# An upload that failed when rclone picked the file up again from its cache: it is not retried.
RELOAD_FAILED = re.compile(r"ERROR : (?P<name>.+?): vfs cache: failed to reload item: (?P<why>.*)$")
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


def binary(config: DriveConfig, progress: Optional[Progress] = None) -> str:
    """The rclone executable (installing rclone, and FUSE where no fusermount exists, when missing)."""
    if config.rclone:
        if not (os.path.isfile(config.rclone) and os.access(config.rclone, os.X_OK)):
            raise ColabMagicError(f"rclone not found at {config.rclone}")
        return config.rclone
    if not shutil.which("rclone"):
        installer.ensure_packages(["rclone"], progress=progress)
    installer.ensure_fuse(progress)  # an installed fuse 2 is kept; fuse3 only when neither is there
    found = shutil.which("rclone")
    if not found:
        raise ColabMagicError("rclone is not installed and could not be installed")
    return found


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
    """Call rclone's remote-control API on loopback and return its JSON answer."""
    auth = base64.b64encode(f"{RC_USER}:{_rc_password().reveal()}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{command}",
        data=json.dumps(params or {}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read().decode() or "{}")


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
                raise ColabMagicError(f"service-account file not found: {sa}")
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
        raise ColabMagicError(f"google-auth is not available: {err}")
    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/drive"])
        creds.refresh(google.auth.transport.requests.Request())
    except Exception as err:
        raise ColabMagicError(f"no usable google-auth credentials ({type(err).__name__}); "
                              "on Colab run google.colab.auth.authenticate_user() first")
    expiry = creds.expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if getattr(creds, "expiry", None) else ""
    return {"access_token": creds.token, "token_type": "Bearer", "expiry": expiry}


# --- the backend -----------------------------------------------------------------

class RcloneBackend:
    """``rclone mount`` at the mountpoint; flush by draining the cache; verify on the remote."""

    name = "rclone"

    def __init__(self, config: DriveConfig, progress: Optional[Progress] = None):
        self.config = config
        self.progress = progress
        self._hash: Optional[Tuple[Optional[str], str]] = None

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
        if svc.info.get("mountpoint") != self.config.mountpoint:
            return None
        return svc

    def mounted(self) -> bool:
        return self.service() is not None and tracking.mount_alive(self.config.mountpoint)

    # -- rclone command lines
    def _argv(self, mountpoint: str, write_back: str, port: int) -> List[str]:
        remote, conf = remote_and_config(self.config)
        argv = [
            binary(self.config, self.progress), "mount", remote, mountpoint, *conf,
            "--cache-dir", str(cache_dir()),
            "--vfs-cache-mode", "writes",
            "--vfs-write-back", write_back,
            "--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-htpasswd", str(_htpasswd()),
            "-v",
        ]
        if self.config.bwlimit:
            argv += ["--bwlimit", self.config.bwlimit]
        return argv

    def _cli(self, args: List[str], timeout: float) -> str:
        remote, conf = remote_and_config(self.config)
        argv = [binary(self.config, self.progress)] + [remote if a == "{remote}" else a for a in args] + conf
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            raise FlushTimeout(f"rclone {args[0]} on the remote did not answer within the timeout", {})
        if result.returncode != 0:
            raise ColabMagicError(f"rclone {args[0]} {self.remote_label} failed",
                                  details=result.stderr.strip().splitlines()[-8:])
        return result.stdout

    # -- mount / unmount
    def _start(self, name: str, mountpoint: str, write_back: str, restart: bool,
               timeout: Optional[float] = None, wait_mounted: bool = True) -> supervisor.Service:
        port = probes.free_port()
        # Through launch.py, so a restart after rclone was killed clears the dead mount it left.
        argv = [sys.executable, "-I", LAUNCHER, mountpoint] + self._argv(mountpoint, write_back, port)
        spec = supervisor.ServiceSpec(
            name=name,
            argv=argv,
            restart=restart,
            stop_timeout=20.0,
            info={"group": "drive", "address": f"127.0.0.1:{port}", "rc_port": port,
                  "mountpoint": mountpoint, "remote": self.remote_label},
        )

        def ready() -> bool:
            if wait_mounted and not tracking.mount_alive(mountpoint):
                return False
            if not probes.port_open(port):
                return False
            rc_call(port, "rc/noop", timeout=2)  # raises until the API answers (and accepts our auth)
            return True

        return supervisor.start(spec, ready=ready, timeout=timeout or self.config.mount_timeout)

    def _remember_meta_root(self, svc: supervisor.Service) -> None:
        """Where rclone keeps the cache's metadata for this remote (to find dirty files later)."""
        try:
            meta = rc_call(int(svc.info["rc_port"]), "vfs/stats", timeout=5)["diskCache"]["pathMeta"]
        except Exception:
            return
        record = drive_dir() / "vfs-meta.json"
        try:
            known = json.loads(record.read_text())
        except (OSError, ValueError):
            known = {}
        known[self.config.remote] = meta
        paths.write_file(record, json.dumps(known, sort_keys=True))

    def _meta_root(self) -> Optional[Path]:
        try:
            meta = json.loads((drive_dir() / "vfs-meta.json").read_text()).get(self.config.remote)
        except (OSError, ValueError):
            return None
        return Path(meta) if meta else None

    def mount(self) -> None:
        mp = self.config.mountpoint
        if self.mounted():
            return
        os.makedirs(mp, exist_ok=True)
        writers.unguard(mp)
        if tracking.mount_alive(mp):
            raise ColabMagicError(f"something else is mounted at {mp}; unmount it or choose another --path")
        _lazy_unmount(mp)  # a dead mount (rclone was killed) is detached
        if os.listdir(mp):
            raise ColabMagicError(f"{mp} is not empty; rclone would hide those files. Move them away first.")
        try:
            svc = self._start(MOUNT_SERVICE, mp, self.config.write_back, restart=True)
        except ServiceError:
            writers.guard(mp)
            raise
        self._remember_meta_root(svc)

    def remount(self) -> None:
        self.mount()

    def stop_mount(self) -> None:
        """Stop the mount (rclone keeps not-yet-uploaded files in its cache)."""
        svc = supervisor.adopt(MOUNT_SERVICE)
        if svc is not None:
            svc.stop()
        _lazy_unmount(self.config.mountpoint)

    def pending_uploads(self) -> int:
        svc = self.service()
        if svc is None:
            return 0
        stats = _cache_stats(int(svc.info["rc_port"]), timeout=10)
        if stats is None:
            return 0
        return int(stats["uploadsQueued"]) + int(stats["uploadsInProgress"])

    def _wait_released(self, deadline: float, meta_root: Optional[Path]) -> None:
        """Wait (within the deadline, at most RELEASE_WAIT seconds) until rclone is done with every
        file just closed, so stopping it cannot cut one short.

        The kernel hands a file's last close (FUSE RELEASE) to rclone after
        ``close()`` has returned. Only then does rclone close its cache file,
        save the file's final size and written ranges in its metadata, and
        queue the upload. rclone stopped before that keeps stale metadata
        (for a file rewritten in place, the next rclone would fetch the old
        bytes over the unrecorded new ones), and stopped in the middle of
        that save it leaves the metadata empty, and the next rclone drops the
        file from its cache. So: every dirty file is queued, and rclone holds
        no metadata file and no dirty file's cache file open, twice in a row.
        A file still open for writing never gets there: the sync refuses
        those before this.
        """
        svc = self.service()
        if svc is None or meta_root is None or svc.pid is None:
            return
        data_root = _data_root(meta_root)
        if data_root is None:
            return
        port, pid = int(svc.info["rc_port"]), svc.pid
        until = min(deadline, time.monotonic() + RELEASE_WAIT)
        settled = 0
        while time.monotonic() < until:
            stats = _cache_stats(port)
            dirty = _dirty_files(meta_root)
            records_open, held = _held_by(pid, meta_root, data_root, dirty)
            if held and not records_open:
                # A dirty file some process still has open (only for reading: writers are refused
                # before this) is rightly open in rclone too; no release is pending for it.
                held = sorted(set(held) - writers.open_paths(self.config.mountpoint))
            queued = int(stats["uploadsQueued"]) + int(stats["uploadsInProgress"]) if stats else -1
            settled = settled + 1 if stats is not None and len(dirty) <= queued and not (records_open or held) else 0
            if settled >= 2:
                return
            time.sleep(0.03)

    def settle(self, deadline: float) -> None:
        """Before the changed files are read: let rclone finish with what was just closed, so its
        cache records are final (``local_copy`` relies on them)."""
        self._wait_released(deadline, self._meta_root())

    def local_copy(self, rel_path: str, size: int) -> Optional[str]:
        """rclone's cache file for ``rel_path`` when it holds the whole file (``size`` bytes, every
        range present by rclone's own record), to be read instead of going through FUSE (several
        times faster); None when the cache holds only part of it, or nothing.

        rclone writes every change into this file and records which ranges it
        holds; a range it does not hold (a file partly read, then rewritten in
        place) would read as zeros here, so then the mount is read instead.
        """
        meta_root = self._meta_root()
        if meta_root is None:
            return None
        try:
            record = json.loads((meta_root / rel_path).read_text())
        except (OSError, ValueError):
            return None
        data = _data_root(meta_root)
        if data is None:
            return None
        cached = data / rel_path
        try:
            if cached.stat().st_size != size or int(record.get("Size", -1)) != size:
                return None
        except OSError:
            return None
        return str(cached) if _ranges_cover(record.get("Rs") or [], size) else None

    # -- flush
    def flush(self, deadline: float) -> None:
        """Upload everything pending in the cache; the mountpoint is unmounted on return."""
        meta_root = self._meta_root()
        self._wait_released(deadline, meta_root)
        self.stop_mount()
        rescued = _rescue_cut_records(meta_root) if meta_root is not None else {}
        flush_dir = drive_dir() / "flush-mount"
        flush_dir.mkdir(exist_ok=True)
        os.chmod(flush_dir, 0o700)
        _lazy_unmount(str(flush_dir))
        self._flush_cache(deadline, meta_root, flush_dir)
        if rescued:
            raise FlushFailed(
                f"rclone stopped while saving its cache record of {len(rescued)} file(s)",
                {rel: (f"rclone's cache record of it was cut short, and rclone drops such a file from its "
                       f"cache; its bytes were kept at {copy}: copy that back into the mount and sync again")
                 for rel, copy in rescued.items()},
            )

    def _flush_cache(self, deadline: float, meta_root: Optional[Path], flush_dir: Path) -> None:
        """Run a second rclone on the cache with no write-back delay until nothing waits in it."""
        if meta_root is not None and not _dirty_files(meta_root):
            return  # nothing waits in the cache
        log = supervisor.log_path(FLUSH_SERVICE)
        log_start = log.stat().st_size if log.exists() else 0
        # rclone uploads what it reloads from the cache before the mount is up: wait only for
        # its API, and never past the deadline.
        pending = _dirty_files(meta_root) if meta_root is not None else []
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FlushTimeout("no time was left to flush", {p: "not uploaded: no time left" for p in pending})
        try:
            svc = self._start(FLUSH_SERVICE, str(flush_dir), "0s", restart=False,
                              timeout=remaining, wait_mounted=False)
        except ServiceError as err:
            if time.monotonic() >= deadline:
                raise FlushTimeout("rclone could not start flushing within the timeout",
                                   {p: "not uploaded: the timeout ran out" for p in pending})
            raise FlushFailed(f"rclone could not start flushing: {err.message}", {}, details=err.details)
        try:
            self._drain(svc, deadline, log_start, meta_root)
        finally:
            svc.stop()
            _lazy_unmount(str(flush_dir))

    def _drain(self, svc: supervisor.Service, deadline: float, log_start: int,
               meta_root: Optional[Path]) -> None:
        port = int(svc.info["rc_port"])
        total = 0
        idle_polls = 0
        while True:
            # None until rclone has read its cache back (and uploaded what it reloaded): only
            # then can an empty queue with no dirty file mean "all uploaded".
            stats = _cache_stats(port) or {}
            if meta_root is None and stats.get("pathMeta"):
                meta_root = Path(stats["pathMeta"])
            dirty = _dirty_files(meta_root) if meta_root is not None else None
            failures = _upload_failures(svc.log, log_start)
            queued = int(stats.get("uploadsQueued", 0)) + int(stats.get("uploadsInProgress", 0))
            if dirty is not None:
                if stats and not dirty and queued == 0:
                    return
                total = max(total, len(dirty))
                if self.progress is not None and total:
                    self.progress(1 - len(dirty) / total, f"{len(dirty)} file(s) still uploading")
                # Dirty files nobody is uploading (rclone gave up on them) will never arrive.
                idle_polls = idle_polls + 1 if stats and queued == 0 else 0
                stuck = [p for p in dirty if failures.get(p, (0, ""))[0] >= FAIL_AFTER_TRIES]
                in_flight = int(stats.get("uploadsInProgress", 0))
                if dirty and ((len(stuck) == len(dirty) and in_flight == 0) or idle_polls >= 8):
                    raise FlushFailed(
                        f"uploads to {self.remote_label} failed",
                        {p: "upload failed: " + (failures[p][1] if p in failures else "rclone did not upload it")
                         for p in dirty},
                    )
            if not svc.child_alive() and svc.status in ("exited", "failed", "stopped"):
                raise FlushFailed("rclone stopped while flushing", {}, details=svc.log_tail())
            if time.monotonic() > deadline:
                pending = dirty or []
                raise FlushTimeout(
                    f"the upload queue did not drain within the timeout ({len(pending)} file(s) pending)",
                    {p: ("still uploading when the timeout ran out"
                         + (f"; last error: {failures[p][1]}" if p in failures else "")) for p in pending},
                )
            time.sleep(0.25)

    # -- verify
    def hash_algo(self, deadline: float) -> Tuple[Optional[str], str]:
        """The checksum to verify with (one both rclone's remote and Python compute) and a label."""
        if self._hash is None:
            features = json.loads(self._cli(["backend", "features", "{remote}"], deadline - time.monotonic()))
            supported = [h.lower() for h in features.get("Hashes") or []]
            for algo in HASH_PREFERENCE:
                if algo in supported:
                    self._hash = (algo, f"{algo} read from the remote")
                    break
            else:
                self._hash = (None, "size only (the remote offers no checksum we can compute)")
        return self._hash

    def remote_files(self, rel_paths: Sequence[str], algo: Optional[str], deadline: float) -> Dict[str, Tuple[int, Optional[str]]]:
        """size and checksum on the remote itself (not through the mount) of each path present."""
        if not rel_paths:
            return {}
        listing = drive_dir() / "verify-files.txt"
        paths.write_file(listing, "".join(p + "\n" for p in rel_paths))
        args = ["lsjson", "{remote}", "--files-only", "-R", "--files-from-raw", str(listing)]
        if algo:
            args += ["--hash-type", algo]
        out = self._cli(args, deadline - time.monotonic())
        found: Dict[str, Tuple[int, Optional[str]]] = {}
        for item in json.loads(out or "[]"):
            hashes = {k.lower(): v for k, v in (item.get("Hashes") or {}).items()}
            found[item["Path"]] = (int(item.get("Size", -1)), hashes.get(algo) if algo else None)
        return found

    def describe(self) -> Dict[str, Any]:
        svc = self.service()
        return {"pid": svc.pid if svc else None, "rc": svc.info.get("address") if svc else None}


def _upload_failures(log: Path, since: int) -> Dict[str, Tuple[int, str]]:
    """file -> (failed tries, last reason) from rclone's log after byte ``since``."""
    try:
        with open(log, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return {}
    found: Dict[str, Tuple[int, str]] = {}
    for line in text.splitlines():
        m = UPLOAD_FAILED.search(line) or RELOAD_FAILED.search(line)
        if m:
            why = m.group("why").replace("vfs cache: failed to transfer file from cache to remote: ", "")
            tries = int(m.group("try")) if "try" in m.groupdict() else FAIL_AFTER_TRIES
            found[m.group("name")] = (tries, why)
    return found


def _records(meta_root: Path) -> Iterator[Tuple[str, Optional[Dict[str, Any]]]]:
    """(path, record) of every cache record under ``meta_root``; record None when unreadable.

    rclone rewrites a record in place (truncate, then write), so a read can
    catch it empty or half written: an unreadable record is read again twice
    before it is given as None. A record removed meanwhile is left out.
    """
    if not meta_root.is_dir():
        return
    for folder, _dirs, files in os.walk(meta_root):
        for name in files:
            path = Path(folder) / name
            record: Optional[Dict[str, Any]] = None
            for attempt in range(3):
                try:
                    record = json.loads(path.read_text())
                    break
                except FileNotFoundError:
                    break
                except (OSError, ValueError):
                    time.sleep(0.02 * (attempt + 1))
            else:
                yield str(path.relative_to(meta_root)).replace(os.sep, "/"), None
                continue
            if record is not None:
                yield str(path.relative_to(meta_root)).replace(os.sep, "/"), record


def _dirty_files(meta_root: Path) -> List[str]:
    """Files rclone's cache still marks dirty (written but not uploaded); an unreadable record
    counts as dirty (it is in rclone's hands)."""
    return sorted(rel for rel, record in _records(meta_root) if record is None or record.get("Dirty"))


def _held_by(pid: int, meta_root: Path, data_root: Path, dirty: Sequence[str]) -> Tuple[bool, List[str]]:
    """What of its cache rclone has open: any record (True), and which dirty files' cache files."""
    meta_prefix = str(meta_root).rstrip(os.sep) + os.sep
    by_path = {str(data_root / rel): rel for rel in dirty}
    opened = procfs.open_paths(pid)
    return any(p.startswith(meta_prefix) for p in opened), [by_path[p] for p in opened if p in by_path]


def _data_root(meta_root: Path) -> Optional[Path]:
    """rclone's cache files for the remote whose cache records are under ``meta_root``."""
    try:
        return cache_dir() / "vfs" / meta_root.relative_to(cache_dir() / "vfsMeta")
    except ValueError:
        return None


def _ranges_cover(ranges: Sequence[Dict[str, Any]], size: int) -> bool:
    """Whether rclone's recorded ranges ([{"Pos", "Size"}, ...]) cover bytes 0..size."""
    covered = 0
    for rng in sorted(ranges, key=lambda r: int(r.get("Pos", 0))):
        pos, length = int(rng.get("Pos", 0)), int(rng.get("Size", 0))
        if pos > covered:
            break
        covered = max(covered, pos + length)
    return covered >= size


def _rescue_cut_records(meta_root: Path) -> Dict[str, str]:
    """Keep a copy of every cached file whose record rclone left unreadable (it was stopped in the
    middle of saving it). The next rclone would delete such a file from its cache, and with it the
    only copy of a write not yet uploaded. Returns path -> where the copy is."""
    rescued: Dict[str, str] = {}
    data_root = _data_root(meta_root)
    if data_root is None:
        return rescued
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for rel, record in _records(meta_root):
        source = data_root / rel
        if record is not None or not source.is_file():
            continue
        target = drive_dir() / "rescued" / stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(drive_dir() / "rescued", 0o700)
        shutil.copy2(source, target)
        rescued[rel] = str(target)
    return rescued


def _cache_stats(port: int, timeout: float = 2.0) -> Optional[Dict[str, Any]]:
    """``vfs/stats``' diskCache, or None while rclone is still loading its cache.

    rclone answers ``vfs/stats`` only once its VFS is made, and reports
    ``diskCache`` only once the cache has been read back (what it reloads
    from a previous run is queued or uploaded by then); until both, there is
    nothing to trust about the queue.
    """
    try:
        answer = rc_call(port, "vfs/stats", timeout=timeout)
    except Exception:  # refused, timed out (rclone holds it while loading), or a cut answer
        return None
    stats = answer.get("diskCache")
    return stats if isinstance(stats, dict) and "uploadsQueued" in stats else None


def _lazy_unmount(mountpoint: str) -> None:
    """Detach whatever FUSE file system is still mounted at ``mountpoint`` (a dead one included)."""
    if not tracking.is_mounted(mountpoint):
        return
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool:
        subprocess.run([tool, "-u", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
        if tracking.is_mounted(mountpoint):
            subprocess.run([tool, "-u", "-z", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
    if tracking.is_mounted(mountpoint):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, stdin=subprocess.DEVNULL)
