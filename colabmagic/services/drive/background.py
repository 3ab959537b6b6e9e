"""``%drive_sync --every``: a supervised daemon that runs a verified sync of the Drive mount every interval.

``start(config, interval)`` writes the settings to ``drive/background-config.json``
and starts the ``drive-sync`` service (through the supervisor, so it
survives an Interrupt and a kernel restart); ``now()`` asks it for a sync at
once (SIGUSR1); ``stop()`` ends it. The daemon (``python -m
colabmagic.services.drive.background CONFIG``) runs the same ``sync()`` as
``%%drive_sync`` (flush through rclone's API without unmounting, verify by
checksum on the remote) on a fixed schedule, and keeps its outcome in
``drive/background.json``: the last verified time (when the synced tree
was read, so everything written before it is on the remote), files and
bytes, the last failure, and the recent runs with the files each verified.
A failure after a success, and the first success after failures, are
events (notify.py). Only the rclone backend can do this: Colab's own mount
can only be flushed by unmounting it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ... import display
from ...errors import BadInputError, ColabMagicError
from ...system import notify, paths, supervisor
from .config import DriveConfig
from .records import BackgroundRecord

SERVICE = "drive-sync"
HISTORY = 50  # runs kept in background.json
LISTED = 200  # verified files listed per run
BUSY_RETRIES = 30  # tries, 0.2 s apart, while a file is open for writing (a checkpoint being saved)
INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")
COLAB_REFUSAL = (
    "--every needs the rclone backend: Colab's own Drive mount can only be flushed by unmounting it "
    "(drive.flush_and_unmount), which a background sync must not do under a running notebook; wrap the "
    "cells that write in %%drive_sync, or use %config DriveMagics.backend = 'rclone'"
)


def state_path() -> Any:
    return paths.subdir("drive") / "background.json"


def config_path() -> Any:
    return paths.subdir("drive") / "background-config.json"


def parse_interval(text: str) -> float:
    """Seconds in '30s', '10m', '1h' or '90' (seconds); at least one second."""
    match = INTERVAL.match(text.strip().lower())
    if not match:
        raise BadInputError(f"--every takes an interval such as 30s, 10m or 1h, or now, or off; not {text[:40]!r}")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    if seconds < 1:
        raise BadInputError("--every needs an interval of at least 1s")
    return seconds


def _read_state() -> Dict[str, Any]:
    try:
        return dict(json.loads(state_path().read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _ago(stamp: Optional[float]) -> str:
    if not stamp:
        return "never"
    return f"{time.strftime('%H:%M:%S', time.localtime(stamp))} ({display.human_seconds(time.time() - stamp)} ago)"


@dataclass(frozen=True)
class BackgroundSync:
    """The background syncer as ``%drive_sync --every`` and ``_colabmagic.drive`` show it."""

    running: bool
    interval: float
    mountpoint: str
    track: str = ""
    last_verified: Optional[float] = None
    files: int = 0
    bytes: int = 0
    runs: int = 0
    last_failure: str = ""
    last_failure_at: Optional[float] = None
    pid: Optional[int] = None

    def summary(self) -> str:
        """One line for ``%colabmagic status``."""
        text = f"every {display.human_seconds(self.interval)}; last verified {_ago(self.last_verified)}"
        if self.last_verified:
            text += f", {self.files} files, {display.human_bytes(self.bytes)}"
        if self.last_failure and (self.last_failure_at or 0) > (self.last_verified or 0):
            text += f"; FAILING since {_ago(self.last_failure_at)}: {self.last_failure}"
        return text

    def fields(self) -> List[Tuple[str, Any]]:
        rows: List[Tuple[str, Any]] = [
            ("status", "running" if self.running else "stopped"), ("every", display.human_seconds(self.interval)),
            ("mountpoint", self.mountpoint + (f" (only {self.track})" if self.track else "")),
            ("last verified", _ago(self.last_verified)),
            ("files, bytes", f"{self.files}, {display.human_bytes(self.bytes)} (last verified sync)"),
            ("syncs", self.runs),
        ]
        if self.last_failure:
            rows.append(("last failure", f"{_ago(self.last_failure_at)}: {self.last_failure}"))
        rows.append(("pid", self.pid))
        return rows

    def __repr__(self) -> str:
        return display.card_text("Drive background sync", self.fields())

    def _repr_html_(self) -> str:
        return display.card_html("Drive background sync", self.fields())


def current() -> Optional[BackgroundSync]:
    """The background syncer (running, or stopped with its last state), else None."""
    service = supervisor.adopt(SERVICE)
    state = _read_state()
    if service is None and not state:
        return None
    recorded = BackgroundRecord.of(service) if service is not None else BackgroundRecord()
    failure = state.get("last_failure") or {}
    return BackgroundSync(
        running=service is not None, interval=recorded.interval or float(state.get("interval") or 0),
        mountpoint=recorded.mountpoint or str(state.get("mountpoint", "")),
        track=recorded.track or str(state.get("track", "")),
        last_verified=state.get("last_verified"), files=int(state.get("files", 0)),
        bytes=int(state.get("bytes", 0)), runs=int(state.get("runs", 0)),
        last_failure=str(failure.get("error", "")), last_failure_at=failure.get("time"),
        pid=service.pid if service is not None else None,
    )


def _subfolder(cfg: DriveConfig, path: str) -> DriveConfig:
    """``--path`` with ``--every``: a folder inside the mountpoint limits the sync to it; else the mountpoint."""
    if not path:
        return cfg
    full = os.path.abspath(os.path.join(cfg.mountpoint, os.path.expanduser(path)))
    if full == cfg.mountpoint:
        return cfg
    if not full.startswith(cfg.mountpoint.rstrip("/") + "/"):
        return cfg.with_(mountpoint=path).resolved()  # another mountpoint, as --path means for %drive_sync
    return cfg.with_(track=os.path.relpath(full, cfg.mountpoint)).resolved()


def _refuse_a_flush_that_unmounts(cfg: DriveConfig) -> None:
    """A background sync flushes under a running notebook: only a backend whose flush leaves the mount up."""
    from .backend import backend_for

    if not backend_for(cfg).stays_mounted:
        raise ColabMagicError(COLAB_REFUSAL)


def every(config: DriveConfig, when: str, path: str = "") -> Any:
    """``%drive_sync --every INTERVAL|now|off [--path SUBFOLDER]``."""
    word = when.strip().lower()
    if word == "off":
        stopped = stop()
        return current() if stopped else "no background Drive sync was running"
    if word == "now":
        return now()
    interval = parse_interval(word)
    cfg = config.resolved()
    _refuse_a_flush_that_unmounts(cfg)
    cfg = _subfolder(cfg, path) if path else cfg
    return start(cfg, interval)


def start(config: DriveConfig, interval: float) -> BackgroundSync:
    """Mount if needed, then start (or restart with new settings) the supervised background syncer."""
    from .sync import mount

    cfg = config.resolved()
    _refuse_a_flush_that_unmounts(cfg)
    mount(cfg)  # the daemon syncs an existing mount; it never mounts one the user unmounted
    paths.write_file(config_path(), json.dumps({"config": cfg.__dict__, "interval": interval}, indent=1,
                                               sort_keys=True))
    spec = supervisor.ServiceSpec(
        name=SERVICE,
        argv=[sys.executable, "-m", "colabmagic.services.drive.background", str(config_path())],
        stop_timeout=cfg.timeout + 10,  # a sync in progress may end first
        info=BackgroundRecord(interval=interval, mountpoint=cfg.mountpoint, track=cfg.track).to_info(),
    )
    def ready() -> bool:  # the daemon has read its settings and written its state
        service = supervisor.adopt(SERVICE)
        return service is not None and service.pid is not None and _read_state().get("daemon_pid") == service.pid

    supervisor.start(spec, ready=ready, timeout=30)
    found = current()
    assert found is not None
    return found


def stop() -> bool:
    service = supervisor.adopt(SERVICE)
    return bool(service is not None and service.stop())


def now(timeout: float = 0.0) -> Any:
    """Ask the running syncer for a sync now (SIGUSR1); with ``timeout``, wait for it to end."""
    service = supervisor.adopt(SERVICE)
    pid = service.pid if service is not None else None
    if pid is None:
        raise ColabMagicError("no background Drive sync is running: start one with %drive_sync --every 10m")
    before = int(_read_state().get("attempts", 0))
    os.kill(pid, signal.SIGUSR1)
    end = time.monotonic() + timeout
    while time.monotonic() < end and int(_read_state().get("attempts", 0)) <= before:
        time.sleep(0.1)
    return current()


# --- the daemon ----------------------------------------------------------------------------------------
class Syncer:
    """The loop: a verified sync at a fixed rate (or at once on SIGUSR1), its outcome kept on disk."""

    def __init__(self, config: DriveConfig, interval: float):
        self.config = config
        self.interval = interval
        self.wake = threading.Event()
        self.state = _read_state()
        if self.state.get("mountpoint") != config.mountpoint:
            self.state = {}
        self.state.update({"interval": interval, "mountpoint": config.mountpoint, "track": config.track,
                           "daemon_pid": os.getpid()})
        self.save()

    def save(self) -> None:
        paths.write_file(state_path(), json.dumps(self.state, indent=1, sort_keys=True))

    def run_forever(self) -> None:
        signal.signal(signal.SIGUSR1, lambda *_: self.wake.set())
        next_at = time.monotonic() + self.interval
        while True:
            self.wake.wait(max(0.0, next_at - time.monotonic()))
            self.wake.clear()
            self.run_once()
            # A fixed rate, not a fixed pause: the last verified time is never more than one interval
            # plus one sync old.
            next_at = max(next_at + self.interval, time.monotonic()) if time.monotonic() >= next_at \
                else next_at

    def run_once(self) -> None:
        from . import tracking
        from .flushing import WritersBusy
        from .sync import sync

        mp = self.config.mountpoint
        self.state["attempts"] = int(self.state.get("attempts", 0)) + 1
        if not tracking.is_mounted(mp):
            # Unmounted on purpose (%drive_sync --unmount): nothing can change there; do not mount it back.
            self.state["skipped"] = {"time": time.time(), "why": "not mounted"}
            self.save()
            return
        as_of = time.time()
        started = time.monotonic()
        try:
            for attempt in range(BUSY_RETRIES):
                as_of = time.time()
                try:
                    report = sync(self.config)
                    break
                except WritersBusy:
                    if attempt == BUSY_RETRIES - 1:
                        raise
                    time.sleep(0.2)
        except Exception as exc:  # every failure is recorded and reported; the loop goes on
            self.failed(exc)
            return
        self.succeeded(report, as_of, time.monotonic() - started)

    def succeeded(self, report: Any, as_of: float, seconds: float) -> None:
        verified = [f for f in report.files if not f.failed and f.change != "deleted"]
        failing = bool(self.state.get("failing"))
        self.state.update({
            "last_verified": as_of, "last_finished": time.time(), "last_seconds": round(seconds, 3),
            "files": len(verified), "bytes": sum(f.size for f in verified),
            "runs": int(self.state.get("runs", 0)) + 1, "failing": False, "method": report.method,
        })
        history = list(self.state.get("history") or [])
        history.append({"as_of": as_of, "finished": time.time(), "seconds": round(seconds, 3),
                        "files": [[f.path, f.size, f.status] for f in verified[:LISTED]]})
        self.state["history"] = history[-HISTORY:]
        self.save()
        if failing:
            notify.emit("drive_sync_recovered", wait=True, mountpoint=self.config.mountpoint, files=len(verified),
                        bytes=sum(f.size for f in verified))

    def failed(self, exc: BaseException) -> None:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        message = str(message).splitlines()[0][:300] if str(message) else type(exc).__name__
        first = not self.state.get("failing")
        self.state.update({"failing": True, "last_failure": {"time": time.time(), "error": message}})
        self.save()
        print(f"[colabmagic] background sync failed: {message}", file=sys.stderr, flush=True)
        if first:
            notify.emit("drive_sync_failed", wait=True, mountpoint=self.config.mountpoint, error=message,
                        last_verified=self.state.get("last_verified"))


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m colabmagic.services.drive.background CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[1]) as fh:
        data = json.load(fh)
    config = DriveConfig(**data["config"])
    Syncer(config, float(data["interval"])).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
