"""The supervised aria2c daemon and the downloads it runs, driven over JSON-RPC with aria2p.

aria2c runs in the foreground under the keeper with only ``--conf-path``
on its command line; the config file (0600) holds the generated RPC secret,
binds RPC to loopback, and names a session file that aria2 saves every few
seconds (and after every change made through colabmagic) and reads at
start, so queued and partial downloads survive a crash, a ``%aria2 stop``
or a kernel restart. ``continue=true`` and a
control file saved every second make a restarted download resume where it
was. ``Aria2`` is a handle to the running daemon: add, inspect, pause,
resume, remove and wait for downloads.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import time
import urllib.request
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ... import display
from ...errors import BadInputError, ColabMagicError, ServiceError
from ...system import environment, installer, paths, probes, secrets, supervisor
from ..records import Record
from . import download as dl
from . import placement, validate
from .download import Download

NAME = "aria2"
SECRET_NAME = "ARIA2_RPC_SECRET"
DEFAULT_PORT = 6800
# The keeper starts the disk writes of what aria2 downloaded every quarter second (system/keeper.py
# write_behind), so aria2's fsyncs (each control-file save, the end of a download) find little left to
# write: a download is on disk as it arrives and completes sooner (see the README's aria2 section).
WRITE_BEHIND = 0.25
PUBLIC_TRACKERS_URL = "https://raw.githubusercontent.com/ngosang/trackerslist/master/trackers_best.txt"
Progress = Callable[[float, str], None]


class DownloadError(ColabMagicError):
    """A download failed (aria2's message is in the text)."""


class SpaceWarning(UserWarning):
    """Local disk looks too small for a download."""


@dataclass(frozen=True)
class Aria2Config:
    """Settings for the daemon (built from ``Aria2Magics`` traits, or by hand in Python)."""

    download_dir: str = ""
    max_concurrent: int = 5
    dht: bool = True
    lpd: bool = False
    seed_time: float = 0.0
    public_trackers: bool = True
    trackers: Tuple[str, ...] = ()
    allow_bittorrent_on_colab: bool = False
    rpc_port: int = 0
    max_download_limit: str = "0"
    rpc_allow_origin_all: bool = False  # on only by setting: lets any web page's script call the RPC
    # The queue is saved after every add, pause, resume and remove (and at a clean exit);
    # the timer only catches what aria2 changes on its own (a finished download leaving the queue).
    save_session_interval: int = 10
    extra_options: Tuple[Tuple[str, str], ...] = ()
    offline: bool = False  # no DHT, LPD, peer exchange or public trackers (COLABMAGIC_OFFLINE does the same)


@dataclass(frozen=True)
class Aria2Record(Record):
    """What the aria2 daemon records (its ``Service.info``), typed."""

    GROUP = "aria2"

    port: int = 0  # the RPC port
    dir: str = ""  # the download folder
    config: str = ""  # the config's digest: a changed config restarts aria2c
    offline: bool = False  # started in offline mode (no DHT, LPD, peer exchange, public trackers)
    bittorrent: bool = True  # BitTorrent allowed (hosted Colab: only by opt-in)

    def loopback_port(self) -> int:
        return self.port


def default_download_dir() -> str:
    """``/kaggle/working/downloads`` on Kaggle (its saved output folder; its image, built from
    Colab's, may also have /content), ``/content/downloads`` on Colab-like machines, else ``~/Downloads``."""
    if environment.is_kaggle() and os.path.isdir(environment.KAGGLE_WORKING):
        return os.path.join(environment.KAGGLE_WORKING, "downloads")
    if os.path.isdir("/content"):
        return "/content/downloads"
    return str(Path.home() / "Downloads")


def state_dir() -> Path:
    return paths.subdir("aria2")


def conf_path() -> Path:
    return state_dir() / "aria2.conf"


def session_path() -> Path:
    return state_dir() / "session.txt"


def trackers_path() -> Path:
    return state_dir() / "trackers.txt"


def cached_trackers() -> List[str]:
    try:
        lines = trackers_path().read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                found.append(validate.tracker(line))
            except BadInputError:
                continue
    return found


def bittorrent_allowed(config: Aria2Config) -> bool:
    return not environment.is_hosted_colab() or config.allow_bittorrent_on_colab


def _secret() -> secrets.Secret:
    existing = secrets.load(SECRET_NAME)
    if existing:
        return existing
    value = secrets.generate_token(24)
    secrets.store(SECRET_NAME, value)
    return value


def options_for(config: Aria2Config, port: int) -> List[Tuple[str, str]]:
    """Every global option except the secret, in a fixed order (so the file is stable)."""
    offline = paths.offline(config.offline)
    bt = bittorrent_allowed(config)
    trackers = [validate.tracker(t) for t in config.trackers]
    if config.public_trackers and not offline:
        trackers += [t for t in cached_trackers() if t not in trackers]
    download_dir = validate.directory(config.download_dir or default_download_dir())
    opts: List[Tuple[str, str]] = [
        ("enable-rpc", "true"),
        ("rpc-listen-all", "false"),
        ("rpc-listen-port", str(port)),
        # Off unless AriaMagics.rpc_allow_origin_all: with it any web page the user opens may try the
        # RPC from the browser. aria2c runs as root and its RPC can write anywhere (dir, out), so the
        # RPC is loopback only (rpc-listen-all false), needs the secret, and %tunnel PORT refuses it.
        ("rpc-allow-origin-all", "true" if config.rpc_allow_origin_all else "false"),
        ("rpc-save-upload-metadata", "true"),
        ("dir", download_dir),
        ("input-file", str(session_path())),
        ("save-session", str(session_path())),
        ("save-session-interval", str(config.save_session_interval)),
        ("auto-save-interval", "1"),
        ("continue", "true"),
        # aria2's own default, as `aria2c URL` runs: fallocate(2) where the file system has it (else zeros
        # written ahead). Measured against "none" on ext4, 1 GiB over loopback HTTP, 8 runs each way
        # alternating: 2.61 s vs 2.91 s (system CPU 1.08 s vs 1.40 s: blocks allocated once, not as each
        # write extends the file), and a full disk fails the download at once rather than near the end.
        # The control file is written before the allocation, so a SIGKILL right after it still resumes.
        ("file-allocation", "prealloc"),
        ("max-concurrent-downloads", str(max(1, config.max_concurrent))),
        ("max-overall-download-limit", "0"),
        ("max-download-limit", validate.speed(config.max_download_limit or "0")),
        ("enable-dht", "true" if config.dht and bt and not offline else "false"),
        ("enable-dht6", "true" if config.dht and bt and not offline else "false"),
        ("dht-file-path", str(state_dir() / "dht.dat")),
        ("dht-file-path6", str(state_dir() / "dht6.dat")),
        ("bt-enable-lpd", "true" if config.lpd and bt and not offline else "false"),
        ("enable-peer-exchange", "false" if offline else "true"),
        ("bt-tracker", ",".join(trackers) if bt else ""),
        ("seed-time", f"{max(0.0, config.seed_time):g}"),
        ("follow-torrent", "true" if bt else "false"),
        ("follow-metalink", "true"),
        ("on-download-complete", str(placement.hook_path())),
        ("on-download-error", str(placement.error_hook_path())),
        ("console-log-level", "notice"),
        ("show-console-readout", "false"),
        ("summary-interval", "0"),
    ]
    for key, value in config.extra_options:
        opts.append((validate.option_name(key), validate.option_value(value)))
    return opts


def _write_config(config: Aria2Config, port: int) -> str:
    """Write the config file (0600, secret inside) and return a digest of it without the secret."""
    opts = options_for(config, port)
    public = "".join(f"{k}={v}\n" for k, v in opts)
    text = "# written by colabmagic; regenerated on every start\n" + public
    text += f"rpc-secret={_secret().reveal()}\n"
    paths.write_file(conf_path(), text, mode=0o600)
    if not session_path().exists():
        paths.write_file(session_path(), "", mode=0o600)
    placement.install_hook()
    return hashlib.sha256(public.encode()).hexdigest()[:16]


def _rpc_client(port: int, timeout: float = 10.0) -> Any:
    import aria2p

    return aria2p.Client(host="http://127.0.0.1", port=port, secret=_secret().reveal(), timeout=timeout)


class Aria2:
    """A handle to the running aria2 daemon (cheap to make; every query goes over RPC)."""

    def __init__(self, service: supervisor.Service):
        self.service = service
        self._client: Any = None

    # --- the daemon ------------------------------------------------------
    @property
    def record(self) -> Aria2Record:
        return Aria2Record.of(self.service)

    @property
    def port(self) -> int:
        return self.record.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def download_dir(self) -> str:
        return self.record.dir

    @property
    def pid(self) -> Optional[int]:
        return self.service.pid

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _rpc_client(self.port)
        return self._client

    def ping(self) -> bool:
        """The readiness probe: ``aria2.getVersion`` answers with our secret."""
        try:
            return "version" in _rpc_client(self.port, timeout=2).get_version()
        except Exception:
            return False

    def stop(self) -> bool:
        return self.service.stop()

    def secret(self) -> secrets.Secret:
        return _secret()

    def _call(self, method: str, *params: Any) -> Any:
        return self._rpc(method, lambda: self.client.call(method, list(params)))

    def _calls(self, *calls: Tuple[str, List[Any]]) -> List[Any]:
        """Several calls in one round trip (aria2's ``system.multicall``): their results, in order."""
        answers = self._rpc(calls[0][0], lambda: self.client.multicall2(list(calls)))
        results = []
        for (method, _), answer in zip(calls, answers):
            if isinstance(answer, dict):  # {"faultCode": ..., "faultString": ...}
                raise DownloadError(f"aria2 refused {method.split('.')[-1]}: {answer.get('faultString', answer)}")
            results.append(answer[0])
        return results

    def _rpc(self, method: str, call: Callable[[], Any]) -> Any:
        import aria2p

        try:
            return call()
        except aria2p.ClientException as exc:
            raise DownloadError(f"aria2 refused {method.split('.')[-1]}: {exc.message}") from None
        except OSError as exc:
            raise ServiceError(f"aria2 RPC is not answering: {exc}", log=self.service.log) from None
        except Exception as exc:  # requests' ConnectionError and friends
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise ServiceError(f"aria2 RPC is not answering: {exc}", log=self.service.log) from None
            raise

    # --- downloads ---------------------------------------------------------
    def add(
        self,
        uris: Sequence[str],
        dir: Optional[str] = None,
        out: Optional[str] = None,
        headers: Sequence[str] = (),
        user_agent: Optional[str] = None,
        seed_time: Optional[float] = None,
        allow_bittorrent: Optional[bool] = None,
    ) -> List[Download]:
        """Queue downloads and return at once. Everything is checked before anything is added."""
        items = validate.sources(list(uris))
        out = validate.out_name(out)
        if out is not None and len(items) > 1:
            raise BadInputError("--out names one file: give one source with it")
        target = validate.directory(dir) if dir else self.download_dir
        header_list = validate.headers(headers)
        agent = validate.user_agent(user_agent)
        seed = validate.seed_time(seed_time)
        allowed = self.record.bittorrent if allow_bittorrent is None else allow_bittorrent
        if any(i.is_bittorrent for i in items):
            if environment.is_hosted_colab() and not allowed:
                raise BadInputError(
                    "BitTorrent is off on hosted Colab. " + environment.COLAB_TERMS
                    + " To opt in: %config Aria2Magics.allow_bittorrent_on_colab = True"
                )
            if environment.is_hosted_colab():
                print("Notice: " + environment.COLAB_TERMS)
        fuse = placement.on_fuse(target)
        gids: List[str] = []
        for item in items:
            options: Dict[str, Any] = {}
            if fuse:
                stage = placement.new_stage(target)
                options["dir"] = str(stage.dir)
                options["file-allocation"] = "none"
            elif dir:
                options["dir"] = target
            if out:
                options["out"] = out
            if header_list:
                options["header"] = header_list
            if agent is not None:
                options["user-agent"] = agent
            if seed is not None:
                options["seed-time"] = f"{seed:g}"
            if item.kind in ("uri", "magnet"):
                gids.append(self._call("aria2.addUri", [item.value], options))
            else:
                data = base64.b64encode(Path(item.value).read_bytes()).decode()
                if item.kind == "torrent":
                    gids.append(self._call("aria2.addTorrent", data, [], options))
                else:
                    gids.extend(self._call("aria2.addMetalink", data, options))
        self.service.writing_soon()
        try:
            self._call("aria2.saveSession")
        except ColabMagicError:
            pass
        found = [self.get(g) for g in gids]
        for d in found:
            self.check_space(d)
        return found

    def check_space(self, d: Download) -> Optional[str]:
        """Warn (SpaceWarning) when the disk aria2 writes to is smaller than what is left to fetch."""
        write_dir = d.staged_in or (os.path.dirname(d.path) if d.path else self.download_dir)
        message = placement.space_warning(write_dir, d.total, d.total - d.completed)
        if message:
            warnings.warn(message, SpaceWarning, stacklevel=2)
        return message

    def get(self, gid: str) -> Download:
        return dl.from_status(self._call("aria2.tellStatus", validate.gid(gid), dl.STATUS_KEYS))

    def downloads(self) -> List[Download]:
        """Active, then waiting/paused, then finished downloads (newest 100)."""
        active, waiting, stopped = self._calls(("aria2.tellActive", [dl.STATUS_KEYS]),
                                               ("aria2.tellWaiting", [0, 1000, dl.STATUS_KEYS]),
                                               ("aria2.tellStopped", [0, 100, dl.STATUS_KEYS]))
        return [dl.from_status(s) for s in [*active, *waiting, *stopped]]

    def pending(self) -> List[Download]:
        """Downloads not finished yet (active, waiting, paused)."""
        active, waiting = self._calls(("aria2.tellActive", [dl.STATUS_KEYS]),
                                      ("aria2.tellWaiting", [0, 1000, dl.STATUS_KEYS]))
        return [dl.from_status(s) for s in [*active, *waiting]]

    def status(self, gid: Optional[str] = None) -> display.Table:
        shown = [self.get(gid)] if gid else self.downloads()
        return dl.table(shown)

    def _status_or_gone(self, gid: str) -> str:
        try:
            return str(self._call("aria2.tellStatus", gid, ["status"]).get("status", ""))
        except DownloadError:
            return ""

    def pause(self, gid: Optional[str] = None) -> List[str]:
        if gid:
            done = [self._call("aria2.forcePause", validate.gid(gid))]
        else:
            self._call("aria2.forcePauseAll")
            done = [d.gid for d in self.pending()]
        self._save_session()
        return done

    def resume(self, gid: Optional[str] = None) -> List[str]:
        if gid:
            done = [self._call("aria2.unpause", validate.gid(gid))]
        else:
            self._call("aria2.unpauseAll")
            done = [d.gid for d in self.pending()]
        self.service.writing_soon()
        self._save_session()
        return done

    def _save_session(self) -> None:
        """Write the queue to the session file now (a SIGKILL right after a change loses nothing)."""
        try:
            self._call("aria2.saveSession")
        except ColabMagicError:
            pass

    def remove(self, gid: Optional[str] = None) -> List[str]:
        """Remove one download (or every one) and forget its result; files already written stay."""
        targets = [self.get(gid)] if gid else self.downloads()
        removed = []
        for d in targets:
            g = d.gid
            if d.status in ("active", "waiting", "paused"):
                self._call("aria2.forceRemove", g)
                end = time.monotonic() + 10
                while time.monotonic() < end and self._status_or_gone(g) not in ("removed", "error", "complete", ""):
                    time.sleep(0.1)
            try:
                self._call("aria2.removeDownloadResult", g)
            except DownloadError:
                pass
            removed.append(g)
        try:
            self._call("aria2.saveSession")
        except ColabMagicError:
            pass
        return removed

    def wait(
        self,
        downloads: Sequence[Download],
        progress: Optional[Progress] = None,
        timeout: Optional[float] = None,
        interval: float = 0.5,
    ) -> List[Download]:
        """Block until every download is complete (and placed), raising DownloadError on a failure.

        A torrent counts once every piece is in and checked: it may go on seeding (``--seed-time``) in
        the background, as a libtorrent script's ``is_seeding`` loop ends then too; a staged torrent
        (Drive folder) counts once its seeding ended and it was moved into place.

        A magnet's metadata step is followed to the download it turns into.
        The end is seen when aria2 announces it on its WebSocket RPC
        (``aria2.onDownloadComplete``, ``onDownloadError``, ...); ``interval``
        only paces the progress updates (and is the poll period if the
        WebSocket cannot be opened).
        """
        gids = [d.gid for d in downloads]
        deadline = None if timeout is None else time.monotonic() + timeout
        warned: set = set()
        with self.notifications() as events:
            return self._wait(gids, events, progress, timeout, deadline, warned, interval)

    def _wait(self, gids: List[str], events: Notifications, progress: Optional[Progress],
              timeout: Optional[float], deadline: Optional[float], warned: set,
              interval: float) -> List[Download]:
        while True:
            current: List[Download] = []
            for i, g in enumerate(gids):
                d = self.get(g)
                while d.done and d.followed_by:
                    gids[i] = g = d.followed_by[0]
                    d = self.get(g)
                twin = self._registered_twin(d)
                if twin is not None:  # the same torrent was already here (a cell run again): follow it
                    gids[i] = g = twin
                    d = self.get(g)
                current.append(d)
                if d.total and g not in warned:
                    warned.add(g)
                    self.check_space(d)
            failed = [d for d in current if d.failed]
            if failed:
                d = failed[0]
                reason = d.error or d.status
                raise DownloadError(
                    f"download {d.gid} ({d.name}) failed: {reason}",
                    details=[line for line in self.service.log_tail(8) if "secret" not in line.lower()],
                )
            total = sum(d.total for d in current)
            got = sum(d.completed for d in current)
            fraction = got / total if total else 0.0
            finished = all(d.fetched for d in current)
            if progress is not None:
                speed = sum(d.speed for d in current)
                names = ", ".join(d.name for d in current)[:60]
                message = f"{names}  {display.human_bytes(got)}/{display.human_bytes(total) if total else '?'}"
                if not finished:
                    message += f"  {display.human_bytes(speed)}/s"
                progress(1.0 if finished else min(fraction, 0.999), message)
            if finished:
                return current
            if deadline is not None and time.monotonic() > deadline:
                raise DownloadError(f"downloads still running after {timeout:.0f}s: {', '.join(gids)}")
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            events.wait(pause)

    def _registered_twin(self, d: Download) -> Optional[str]:
        """For a torrent aria2 refused because the same one is already running or queued (added again by
        a cell run a second time, say while the first one still seeds), the running one's gid; the
        refused copy is dropped from the finished list. Else None."""
        if not (d.failed and d.error_code == dl.DUPLICATE_INFO_HASH and d.info_hash):
            return None
        for other in self.pending():
            if other.info_hash == d.info_hash and other.gid != d.gid:
                try:
                    self._call("aria2.removeDownloadResult", d.gid)
                except ColabMagicError:
                    pass
                return other.gid
        return None

    def notifications(self) -> Notifications:
        """aria2's own download events from its WebSocket RPC (a timer when that cannot be opened)."""
        return Notifications(self.port)

    # --- trackers and web UIs ---------------------------------------------------
    def set_trackers(self, trackers: Sequence[str]) -> None:
        self._call("aria2.changeGlobalOption", {"bt-tracker": ",".join(trackers)})

    def rpc_card(self) -> str:
        """How to reach the RPC port from a laptop (the one place the secret is shown)."""
        return display.card_text(
            "aria2 JSON-RPC (loopback only; reach it through an SSH tunnel)",
            [
                ("on your computer", f"ssh -L 6800:localhost:{self.port} <the ssh command from %tunnel>"),
                ("RPC address", "http://localhost:6800/jsonrpc"),
                ("secret token", self.secret().reveal()),
                ("AriaNg", "AriaNg Settings > RPC: host localhost, port 6800, protocol http, secret above"),
                ("browser extension", "Aria2 Explorer / Aria2 for Chrome: the same address and secret"),
                ("web page origin", "AriaNg opened from a web site needs %config Aria2Magics.rpc_allow_origin_all "
                 "= True, then %aria2 start (off by default: any page could then try the RPC)"),
            ],
        )

    # --- presentation ------------------------------------------------------
    def _fields(self) -> List[Any]:
        try:
            pending = len(self.pending())
        except ColabMagicError:
            pending = -1
        return [
            ("status", self.service.status),
            ("pid", self.pid),
            ("rpc", self.address),
            ("folder", self.download_dir),
            ("unfinished downloads", pending if pending >= 0 else "RPC not answering"),
            ("restarts", self.service.restarts),
            ("log", str(self.service.log)),
        ]

    def __repr__(self) -> str:
        return display.card_text("aria2 daemon", self._fields())

    def _repr_html_(self) -> str:
        return display.card_html("aria2 daemon", self._fields())


class Notifications:
    """The events aria2 sends to every WebSocket client of its RPC port, used as a wake-up.

    aria2 pushes ``aria2.onDownloadStart``, ``onDownloadPause``,
    ``onDownloadStop``, ``onDownloadComplete``, ``onDownloadError`` and
    ``onBtDownloadComplete`` (``{"params": [{"gid": ...}]}``) without being
    asked and without the secret; the state itself is still read with the
    secret over RPC. ``wait(t)`` returns the events that arrived within ``t``
    seconds (at once when one arrives), or sleeps ``t`` when the WebSocket
    could not be opened, so a caller that re-reads the state after each wait
    is correct either way. The client is websocket-client (aria2p's own
    dependency), imported on first use.
    """

    def __init__(self, port: int, connect_timeout: float = 5.0):
        self._ws: Any = None
        try:
            import websocket

            self._ws = websocket.create_connection(
                f"ws://127.0.0.1:{port}/jsonrpc", timeout=connect_timeout, suppress_origin=True)
        except Exception:  # an old aria2 without WebSocket, a refused connection: fall back to the timer
            self._ws = None

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def wait(self, timeout: float) -> List[Tuple[str, str]]:
        """(event, gid) pairs that arrived within ``timeout`` seconds (empty when none did)."""
        if self._ws is None:
            time.sleep(timeout)
            return []
        import websocket

        found: List[Tuple[str, str]] = []
        self._ws.settimeout(max(timeout, 0.001))
        while True:
            try:
                text = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                return found
            except Exception:  # the daemon went away (a restart): poll from now on
                self.close()
                if not found:
                    time.sleep(timeout)
                return found
            found.extend(_events(text))
            if found:
                self._ws.settimeout(0.001)  # take what else is queued, then return

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
            self._ws = None

    def __enter__(self) -> Notifications:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def _events(text: Any) -> List[Tuple[str, str]]:
    import json

    try:
        message = json.loads(text)
    except (TypeError, ValueError):
        return []
    if not isinstance(message, dict) or not str(message.get("method", "")).startswith("aria2.on"):
        return []
    params = message.get("params") or [{}]
    return [(str(message["method"]), str(p.get("gid", ""))) for p in params if isinstance(p, dict)]


def _choose_port(config: Aria2Config, running: Optional[supervisor.Service]) -> int:
    if config.rpc_port:
        return config.rpc_port
    recorded = Aria2Record.of(running).port if running is not None else 0
    if recorded:
        return recorded
    if not probes.port_open(DEFAULT_PORT) and _bindable(DEFAULT_PORT):
        return DEFAULT_PORT
    return probes.free_port()


def _bindable(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def binary(progress: Optional[Progress] = None) -> str:
    found = shutil.which("aria2c")
    if not found:
        installer.ensure_packages(["aria2"], progress=progress)
        found = shutil.which("aria2c")
    if not found:
        raise ServiceError("aria2c is not installed and could not be installed")
    return found


def start(config: Aria2Config, progress: Optional[Progress] = None, timeout: float = 30.0) -> Aria2:
    """Start the daemon with ``config`` (a running one with the same settings is reused as-is)."""
    running = supervisor.adopt(NAME)
    port = _choose_port(config, running)
    if running is None or Aria2Record.of(running).port != port:
        supervisor.check_port_free(port, "aria2 RPC")
    exe = binary(progress)
    download_dir = validate.directory(config.download_dir or default_download_dir())
    digest = _write_config(config, port)
    spec = supervisor.ServiceSpec(
        name=NAME,
        argv=[exe, f"--conf-path={conf_path()}"],
        restart=True,
        stop_timeout=15,
        write_behind=WRITE_BEHIND,
        info=Aria2Record(port=port, dir=download_dir, config=digest, offline=paths.offline(config.offline),
                         bittorrent=bittorrent_allowed(config)).to_info(),
    )
    probe_port = port

    def ready() -> bool:
        try:
            return "version" in _rpc_client(probe_port, timeout=2).get_version()
        except Exception:
            return False

    service = supervisor.start(spec, ready=ready, timeout=timeout)
    return Aria2(service)


def ensure(config: Aria2Config, progress: Optional[Progress] = None) -> Aria2:
    """The running daemon (waiting out a restart in progress), else a new one started with ``config``.

    A running daemon is kept even if settings changed (``start`` applies new
    settings), except when offline mode or the BitTorrent opt-in changed:
    then it restarts so that DHT, LPD and public trackers follow them.
    """
    running = supervisor.adopt(NAME)
    recorded = Aria2Record.of(running) if running is not None else None
    same_mode = recorded is not None and recorded.offline == paths.offline(config.offline) and (
        recorded.bittorrent == bittorrent_allowed(config)
    )
    if running is not None and running.keeper_alive() and same_mode:
        handle = Aria2(running)
        if probes.wait_for(handle.ping, timeout=30, interval=0.1):
            return handle
    if running is not None:
        # Reuse its folder and port so a restart does not change where downloads go.
        config = _with_running(config, running)
    return start(config, progress=progress)


def _with_running(config: Aria2Config, running: supervisor.Service) -> Aria2Config:
    recorded = Aria2Record.of(running)
    return replace(config, download_dir=config.download_dir or recorded.dir,
                   rpc_port=config.rpc_port or recorded.port)


def current() -> Optional[Aria2]:
    """The running daemon adopted from disk, or None (no RPC call, no start)."""
    service = supervisor.adopt(NAME)
    if service is None:
        return None
    return Aria2(service)


def stop() -> bool:
    service = supervisor.adopt(NAME)
    return bool(service and service.stop())


def update_trackers(url: str = PUBLIC_TRACKERS_URL, timeout: float = 20.0, offline: bool = False) -> List[str]:
    """Fetch a public tracker list into the cache (refused in offline mode)."""
    if paths.offline(offline):
        raise BadInputError(
            "offline mode (COLABMAGIC_OFFLINE=1): public tracker lists are not fetched; "
            f"the cached list ({trackers_path()}) is used as it is"
        )
    try:
        validate.url(url)
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - checked http(s) URL
            text = resp.read(1_000_000).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        raise ColabMagicError(f"could not fetch the tracker list from {url}: {exc}") from None
    found = []
    for line in text.splitlines():
        try:
            t = validate.tracker(line)
        except BadInputError:
            continue
        if t not in found:
            found.append(t)
    if not found:
        raise ColabMagicError(f"no tracker URLs in {url}")
    paths.write_file(trackers_path(), "\n".join(found) + "\n", mode=0o600)
    return found
