"""The keeper: one small process that runs every daemon of a colabmagic home and restarts those that die.

``python -I -S keeper.py SERVICES_DIR KEEPER_DIR`` is started by the supervisor
in its own session and forks once more (so it is nobody's child in the
kernel), so a cell Interrupt or a kernel restart does not reach it. It
records who it is in ``KEEPER_DIR/keeper.json``. The supervisor asks it for
work through files and one signal: a ``NAME.spec`` (marshal) in SERVICES_DIR is a
service wanted (its per-start token names the instance), a removed spec is a
service to stop, and SIGUSR1 says "look again". For each service the keeper
starts the daemon in a session and process group of its own (one group signal
reaches the daemon and whatever it starts), restarts it with capped exponential back-off
while the spec says so, stops it with SIGTERM then SIGKILL after its
``stop_timeout``, and keeps its run file ``NAME.run.json`` (the daemon's
identity, restarts, last exit status, state) that the kernel reads. It reaps
every orphaned descendant (it is a child subreaper). With nothing left to
run it exits (one started ahead of its first service waits ``IDLE_GRACE`` for it). SIGTERM stops every daemon and then the keeper.

A spec with ``write_behind`` (seconds) also has the keeper start the disk writes of what that daemon
writes as it goes (``write_behind()``, every ``write_behind`` seconds while it writes, every
``WRITE_BEHIND_IDLE`` seconds otherwise, at once on SIGUSR1): aria2's downloads. Left to itself the kernel keeps a
download in memory until it is 30 s old or a tenth of RAM is waiting, so aria2's own fsync (at every
control-file save and at the end) does all of that writing while the download stands still.

It waits in ``sigtimedwait`` with its signals blocked: no handler runs at an
arbitrary point, and an idle keeper spends no CPU.
"""

from __future__ import annotations

import marshal
import os
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs about 1 MB of RSS; the annotations are never evaluated
    from typing import Any, Dict, List, Optional

# Only what supervision needs is imported (no subprocess, no site, no typing, no json: it imports
# re and enum, a third of the keeper's start-up), and ctypes and fcntl only once the first daemon
# runs: the keeper runs for as long as any service does, and the first service of a home waits for
# it to start. Specs come as marshal data; the files the kernel reads are written as JSON by _dump.

PR_SET_CHILD_SUBREAPER = 36
HEALTHY_AFTER = 30.0  # seconds of uptime after which the back-off starts again from its floor
GIVE_UP_RESTARTS = 10  # more restarts than this within GIVE_UP_WINDOW seconds: stop restarting
GIVE_UP_WINDOW = 120.0
IDLE_GRACE = 2.0  # seconds a keeper started ahead of its first service waits for it
SIGNALS = (signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SPEC_SUFFIX = ".spec"
SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback of the dirty pages in the range, wait for nothing
WRITE_BEHIND_MIN = 1 << 20  # files smaller than this (logs, control files) are left to the kernel
WRITE_BEHIND_IDLE = 2.0  # seconds between looks at a write-behind daemon that wrote nothing since the last


def _start_time(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode()
    except OSError:
        return None
    return int(text.rpartition(")")[2].split()[19])


def _char(ch: str) -> str:
    if " " <= ch < "\x7f" and ch not in '"\\':
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # a surrogate pair, as JSON spells it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _dump(value: Any) -> str:
    """JSON for the keeper's own plain data (str, int, float, bool, None, list, dict with str keys)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(map(_char, value)) + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_dump(str(k))}: {_dump(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_dump(v) for v in value) + "]"


def _write_json(path: str, data: Dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_dump(data))
    os.replace(tmp, path)


def _load_spec(path: str) -> Dict[str, Any]:
    with open(path, "rb") as fh:
        spec = marshal.load(fh)
    if not isinstance(spec, dict):
        raise ValueError(path)
    return spec


def spawn(argv: list, env: Dict[str, str], log_path: str) -> int:
    """Start ``argv`` in a session (and so a process group) of its own, stdin on /dev/null, stdout and
    stderr appended to the log. A session each, as when every daemon had a keeper of its own: where the
    kernel groups CPU time by session (autogroup), one busy daemon does not slow down the others.

    posix_spawn reports a missing or non-executable program as OSError, as
    subprocess would; only the descriptors 0-2 reach the daemon (Python opens
    everything else close-on-exec); SIGPIPE and SIGXFSZ, which Python ignores,
    are set back to their defaults, and the keeper's blocked signals are unblocked.
    """
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ]
        sigdef = [s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s]
        return os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True,
                               setsigmask=(), setsigdef=sigdef)
    finally:
        os.close(log_fd)


class Service:
    """One wanted daemon: its spec, and what the keeper knows of its current run."""

    def __init__(self, spec: Dict[str, Any]):
        self.spec = spec
        self.name: str = spec["name"]
        self.token: str = spec["token"]
        self.wanted = True
        self.pid: Optional[int] = None  # the daemon while it runs (not yet reaped)
        self.status = "starting"
        self.restarts = 0
        self.restart_times: List[float] = []
        self.last_exit: Optional[int] = None
        self.started = 0.0
        self.backoff = float(spec.get("backoff_min", 0.5))
        self.restart_at: Optional[float] = None  # monotonic time of the next start
        self.kill_at: Optional[float] = None  # monotonic time of the SIGKILL of a stop
        self.write_behind_at: Optional[float] = None  # monotonic time of the next write_behind()
        self.written = -1  # the daemon's bytes written (wchar) at the last write_behind()


class Keeper:
    def __init__(self, services_dir: str, keeper_dir: str, tell: int = -1):
        self.dir = os.path.abspath(services_dir)
        self.keeper_dir = os.path.abspath(keeper_dir)
        self.services: Dict[str, Service] = {}
        self.shutting_down = False
        self.tell = tell  # closed once keeper.json is written
        self.libc: Any = None  # ctypes' libc, once the first daemon runs

    # --- files ---------------------------------------------------------------
    def _path(self, name: str, suffix: str) -> str:
        return os.path.join(self.dir, name + suffix)

    def log(self, svc: Service, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(svc.spec["log"], "ab") as fh:
                fh.write(f"[colabmagic {stamp}] {message}\n".encode())
        except OSError:
            pass

    def write_run(self, svc: Service, status: str) -> None:
        svc.status = status
        child: Optional[Dict[str, Any]] = None
        if svc.pid is not None:
            try:
                child = {"pid": svc.pid, "start_time": _start_time(svc.pid), "cmdline": [],
                         "pgid": os.getpgid(svc.pid)}
            except ProcessLookupError:
                child = None
        data = {
            "status": status,
            "token": svc.token,
            "keeper_pid": os.getpid(),
            "child": child,
            "restarts": svc.restarts,
            "last_exit": svc.last_exit,
            "updated": time.time(),
        }
        try:
            _write_json(self._path(svc.name, ".run.json"), data)
        except OSError:
            pass

    def wanted_specs(self) -> Dict[str, Dict[str, Any]]:
        """name -> spec for every spec file that is this keeper's to run (or already run)."""
        found: Dict[str, Dict[str, Any]] = {}
        try:
            names = os.listdir(self.dir)
        except OSError:
            return found
        for entry in names:
            if not entry.endswith(SPEC_SUFFIX):
                continue
            try:
                spec = _load_spec(os.path.join(self.dir, entry))
                name, token = spec["name"], spec["token"]
            except (OSError, ValueError, EOFError, KeyError, TypeError):
                continue
            known = self.services.get(name)
            if known is None or known.token != token:
                # A spec whose run file another keeper wrote (one that was killed) is not ours to start
                # a second time: its daemon may still run, and the kernel restarts it under us.
                run_path = self._path(name, ".run.json")
                if os.path.exists(run_path):  # rare (a kernel removes it before a start): json only then
                    import json

                    try:
                        with open(run_path) as fh:
                            run = json.load(fh)
                        if run.get("token") == token and run.get("keeper_pid") != os.getpid():
                            continue
                    except (OSError, ValueError, AttributeError):
                        pass
            found[name] = spec
        return found

    # --- what to run ---------------------------------------------------------
    def scan(self) -> None:
        """Read the spec files again (SIGUSR1), and look at once at what write-behind daemons write."""
        specs = {} if self.shutting_down else self.wanted_specs()
        for svc in self.services.values():
            if svc.write_behind_at is not None:
                svc.write_behind_at = time.monotonic()
        for name, svc in self.services.items():
            spec = specs.get(name)
            if svc.wanted and (spec is None or spec["token"] != svc.token):
                self.stop(svc)
        for name, spec in specs.items():
            if name not in self.services:
                svc = Service(spec)
                self.services[name] = svc
                self.start(svc)

    def still_wanted(self, svc: Service) -> bool:
        try:
            return bool(_load_spec(self._path(svc.name, SPEC_SUFFIX)).get("token") == svc.token)
        except (OSError, ValueError, EOFError):
            return False

    def start(self, svc: Service) -> None:
        spec = svc.spec
        svc.restart_at = None
        try:
            if spec.get("cwd"):
                os.chdir(spec["cwd"])  # the daemon starts in its folder; the keeper's own is "/"
            try:
                svc.pid = spawn(spec["argv"], spec["env"], spec["log"])
            finally:
                os.chdir("/")
        except OSError as exc:
            self.log(svc, f"could not start {spec['argv'][0]}: {exc}")
            svc.last_exit = 127
            self.write_run(svc, "failed")
            return
        svc.started = time.monotonic()
        svc.written = -1
        svc.write_behind_at = svc.started if spec.get("write_behind") else None
        self.write_run(svc, "running")

    def stop(self, svc: Service) -> None:
        svc.wanted = False
        svc.restart_at = None
        svc.write_behind_at = None
        if svc.pid is not None:
            try:
                os.killpg(svc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            svc.kill_at = time.monotonic() + float(svc.spec.get("stop_timeout", 10))

    def exited(self, svc: Service, code: int) -> None:
        """The daemon of ``svc`` was reaped with exit status ``code``."""
        svc.pid = None
        svc.kill_at = None
        svc.write_behind_at = None
        svc.last_exit = code
        if not svc.wanted or not self.still_wanted(svc):
            svc.wanted = False
            return
        self.log(svc, f"{svc.name} exited with status {code}")
        if not svc.spec.get("restart", True):
            self.write_run(svc, "exited")
            return
        if time.monotonic() - svc.started > HEALTHY_AFTER:
            svc.backoff = float(svc.spec.get("backoff_min", 0.5))
        svc.restarts += 1
        if self.gave_up(svc):
            return
        self.write_run(svc, "backoff")
        self.log(svc, f"restarting {svc.name} in {svc.backoff:.1f}s (restart {svc.restarts})")
        svc.restart_at = time.monotonic() + svc.backoff
        svc.backoff = min(svc.backoff * 2, float(svc.spec.get("backoff_max", 10.0)))

    def gave_up(self, svc: Service) -> bool:
        """After too many restarts in a short time: record "gave-up" and tell the user; no more restarts.

        A daemon that dies again and again (a bad config, a port someone took)
        would otherwise be restarted forever with nobody told. The keeper keeps
        the service, shown as "gave-up" in ``%colabmagic status``, until it is
        stopped or started again.
        """
        now = time.monotonic()
        window = float(svc.spec.get("give_up_window", GIVE_UP_WINDOW))
        svc.restart_times = [t for t in svc.restart_times if now - t <= window] + [now]
        restarts = len(svc.restart_times) - 1
        if restarts < int(svc.spec.get("give_up_restarts", GIVE_UP_RESTARTS)):
            return False
        self.write_run(svc, "gave-up")
        self.log(svc, f"{svc.name} restarted {restarts} times within {window:.0f}s: "
                      "not restarting it again (start it again, or look at this log)")
        self.announce(svc, restarts, window)
        return True

    def announce(self, svc: Service, restarts: int, window: float) -> None:
        """The service_gave_up event (events.jsonl, and the webhook when one is set), sent by a forked
        child: the keeper goes on supervising the others meanwhile, and never loads notify.py itself
        (it runs without colabmagic on its path, so the module is loaded by its file)."""
        if os.fork() != 0:
            return  # the child is reaped with the other orphans
        code = 0
        try:
            import importlib.util

            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notify.py")
            module_spec = importlib.util.spec_from_file_location("colabmagic_notify", path)
            assert module_spec is not None and module_spec.loader is not None
            notify = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(notify)
            notify.emit("service_gave_up", home_dir=os.path.dirname(self.dir), wait=True, service=svc.name,
                        restarts=restarts, window=window, last_exit=svc.last_exit)
        except BaseException as exc:  # the run file and the log already say it; a notification is extra
            self.log(svc, f"could not record the give-up event: {type(exc).__name__}")
            code = 1
        os._exit(code)

    # --- the loop --------------------------------------------------------------
    def reap(self) -> None:
        by_pid = {svc.pid: svc for svc in self.services.values() if svc.pid is not None}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            svc = by_pid.get(pid)
            if svc is not None:  # anything else was an orphaned descendant, now reaped
                self.exited(svc, os.waitstatus_to_exitcode(status))

    def tick(self) -> Optional[float]:
        """Act on what is due; return the seconds until the next thing is (None: nothing is)."""
        now = time.monotonic()
        due: List[float] = []
        for name, svc in list(self.services.items()):
            if svc.kill_at is not None and svc.pid is not None:
                if now >= svc.kill_at:
                    try:
                        os.killpg(svc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                    svc.kill_at = now + 1.0  # again, should it still be there
                due.append(svc.kill_at)
            if svc.write_behind_at is not None and svc.pid is not None and self.libc is not None:
                if now >= svc.write_behind_at:
                    written = write_behind(svc.pid, self.libc, svc.written)
                    # Every write_behind seconds while the daemon writes; WRITE_BEHIND_IDLE once it stopped
                    # (a kernel that queues a download says so with SIGUSR1, and the next look is at once).
                    # (Where /proc/PID/io cannot be read, written is -1: every look is a full one.)
                    wrote = written < 0 or written != svc.written
                    every = float(svc.spec["write_behind"]) if wrote else WRITE_BEHIND_IDLE
                    svc.written, svc.write_behind_at = written, now + every
                due.append(svc.write_behind_at)
            if svc.restart_at is not None:
                if not svc.wanted or not self.still_wanted(svc):
                    svc.wanted = False
                    svc.restart_at = None
                elif now >= svc.restart_at:
                    self.start(svc)
                else:
                    due.append(svc.restart_at)
            if not svc.wanted and svc.pid is None:
                self.write_run(svc, "stopped")  # the kernel's stop waits for this
                del self.services[name]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def nothing_left(self) -> bool:
        """True (and the lock held until exit) when no service is wanted: the kernel starts a new keeper."""
        import fcntl  # here, not at start-up: loading it is a shared library to open (about 2 ms)

        lock = os.open(os.path.join(self.keeper_dir, "keeper.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)  # the kernel holds it while it hands work to a running keeper
        self.scan()
        if self.services:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)
            return False
        try:
            with open(os.path.join(self.keeper_dir, "keeper.json")) as fh:
                mine = fh.read().startswith(_dump({"pid": os.getpid()})[:-1] + ",")
            if mine:
                os.unlink(os.path.join(self.keeper_dir, "keeper.json"))
        except OSError:
            pass
        return True  # exits with the lock held: released once the process is gone

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # caught (never runs: blocked), so it is queued
        os.chdir("/")
        me = os.getpid()
        _write_json(os.path.join(self.keeper_dir, "keeper.json"),
                    {"pid": me, "start_time": _start_time(me), "cmdline": _cmdline(me)})
        if self.tell >= 0:
            os.close(self.tell)
        self.scan()  # first: the service that made the kernel start this keeper waits for it
        try:
            import ctypes  # after the first start: about 4 ms

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # applies to the daemons already started too
            libc.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            self.libc = libc
        except (OSError, AttributeError):
            pass
        born = time.monotonic()
        had_work = bool(self.services)
        while True:
            self.reap()
            count = len(self.services)
            wait = self.tick()
            if len(self.services) < count and not self.shutting_down:
                self.scan()  # a service replaced under the same name starts once the old one is gone
                continue
            had_work = had_work or bool(self.services)
            if not self.services and wait is None:
                # Nothing to run: leave at once (a stop leaves nothing behind), except a keeper started
                # ahead of its first service, which waits for it a short while.
                left = 0.0 if had_work else IDLE_GRACE - (time.monotonic() - born)
                if self.shutting_down or (left <= 0 and self.nothing_left()):
                    return 0
                if left > 0:
                    wait = left
                else:
                    had_work = bool(self.services)
                    continue
            info = signal.sigtimedwait(SIGNALS, wait) if wait is not None else signal.sigwaitinfo(SIGNALS)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if info.si_signo != signal.SIGUSR1:
                self.shutting_down = True
            self.scan()


def _wchar(pid: int) -> int:
    """The bytes ``pid`` has written so far (``wchar`` of /proc/PID/io), or -1 when unreadable."""
    try:
        fd = os.open(f"/proc/{pid}/io", os.O_RDONLY | os.O_CLOEXEC)  # three system calls, not open()'s ten
        try:
            data = os.read(fd, 512)
        finally:
            os.close(fd)
        return int(data.split(b"wchar:", 1)[1].split(None, 1)[0])
    except (OSError, IndexError, ValueError):
        return -1


def write_behind(pid: int, libc: Any, since: int) -> int:
    """Start the disk writes of what daemon ``pid`` has written to its open files; return its wchar.

    Nothing waits and nothing leaves the page cache: sync_file_range(SYNC_FILE_RANGE_WRITE) only hands
    the dirty pages to the disk now rather than when the kernel would (30 s later, or once a tenth of
    RAM is dirty). So when aria2 fsyncs a download (at each control-file save and when it completes),
    little is left to write (the "aria2, HTTP" benchmark row measures what that is worth).

    A look costs one read of /proc/PID/io when the daemon wrote nothing since ``since``; otherwise its
    descriptors are listed and each regular file of at least WRITE_BEHIND_MIN bytes open for writing
    is opened read-only (no side effect on the file) for the call. Only the keeper's own daemons.
    """
    written = _wchar(pid)
    if written >= 0 and written == since:
        return written
    fd_dir = f"/proc/{pid}/fd"
    try:
        entries = os.listdir(fd_dir)
    except OSError:
        return written
    for entry in entries:
        try:
            with open(f"/proc/{pid}/fdinfo/{entry}", "rb") as fh:
                flags = int(fh.read().split(b"flags:", 1)[1].split(None, 1)[0], 8)
            if flags & os.O_ACCMODE == os.O_RDONLY:
                continue
            path = f"{fd_dir}/{entry}"
            if not _big_file(os.stat(path)):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            try:
                if _big_file(os.fstat(fd)):  # the same file the daemon has open, still
                    libc.sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)
            finally:
                os.close(fd)
        except (OSError, IndexError, ValueError):
            continue
    return written


def _big_file(st: os.stat_result) -> bool:
    return (st.st_mode & 0o170000) == 0o100000 and st.st_size >= WRITE_BEHIND_MIN  # S_ISREG


def _cmdline(pid: int) -> List[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return [part.decode("utf-8", "replace") for part in fh.read().rstrip(b"\0").split(b"\0")]


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: keeper.py SERVICES_DIR KEEPER_DIR", file=sys.stderr)
        return 2
    # The keeper is nobody's child in the kernel: this parent exits (and the supervisor reaps it) once
    # the keeper has written keeper.json, or has died; so its exit tells the supervisor "ask keeper.json".
    told, tell = os.pipe()
    if os.fork() > 0:
        os.close(tell)
        os.read(told, 1)
        os._exit(0)
    os.close(told)
    return Keeper(argv[1], argv[2], tell).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
