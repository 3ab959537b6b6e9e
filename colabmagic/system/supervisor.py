"""Start, adopt, inspect and stop colabmagic's daemons.

Every daemon of a colabmagic home runs under the one keeper (see keeper.py),
a small process in its own session that the first start launches and that
exits once nothing is left to run. A daemon logs to
``$COLABMAGIC_HOME/logs/NAME.log`` and is recorded in
``$COLABMAGIC_HOME/services/NAME.json`` (what was started and why), its
keeper spec ``NAME.spec`` (present while it is wanted) and the keeper's
run file ``NAME.run.json`` (what is running now). A new kernel re-adopts a
service when the recorded keeper or daemon is still the same process
(pid + start time + command line). Every process we start carries a
per-start token in its environment, so a stop finds the daemon's
descendants even if they left its process group, and never touches a
process that lacks the token. Daemons start with a minimal environment
(daemon_environment.py), never the kernel's, which holds the user's tokens.
"""

from __future__ import annotations

import json
import marshal
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ..errors import PortInUseError, ServiceError, log_tail
from . import daemon_environment, paths, procfs
from .procfs import ProcessIdentity

TOKEN_ENV = "COLABMAGIC_SERVICE_TOKEN"
# The keeper uses only the standard library; run as a script (isolated mode) it starts fast
# and needs no PYTHONPATH, which would otherwise leak into every daemon's environment.
KEEPER_SCRIPT = str(Path(__file__).with_name("keeper.py"))

# The keeper's states in which it runs nothing for a service and will not start it again by itself.
TERMINAL = ("failed", "exited", "stopped")


@dataclass(frozen=True)
class ServiceSpec:
    """What to run: a plain, comparable description handed over by a domain service."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Optional[str] = None
    restart: bool = True
    backoff_max: float = 10.0
    stop_timeout: float = 10.0
    info: Mapping[str, Any] = field(default_factory=dict)
    # Seconds between the keeper's looks at what the daemon wrote, to start its disk writes then
    # (keeper.write_behind); 0 for none. How it is supervised, like stop_timeout: not in the fingerprint.
    write_behind: float = 0.0

    def fingerprint(self) -> Dict[str, Any]:
        """What decides whether a running service can be reused as-is."""
        return {
            "argv": list(self.argv),
            "env": dict(sorted(self.env.items())),
            "cwd": self.cwd,
            "restart": self.restart,
            "info": json.loads(json.dumps(dict(self.info), sort_keys=True)),
        }


RUNTIME_ROOT = Path("/run/colabmagic")


def _remove_runtime_dirs(rec: Dict[str, Any], keep: Sequence[str] = ()) -> None:
    """Remove the folders a service asked to have removed when it stops (``info["runtime_dirs"]``):
    only folders of ours, under ``/run/colabmagic`` or the colabmagic home."""
    wanted = (rec.get("spec", {}).get("info") or {}).get("runtime_dirs") or []
    roots = (RUNTIME_ROOT.resolve(), paths.home().resolve())
    kept = {Path(str(k)).resolve() for k in keep}
    for folder in wanted:
        path = Path(str(folder)).resolve()
        if path in kept:
            continue
        if any(root in path.parents for root in roots):
            shutil.rmtree(path, ignore_errors=True)


def _run_stop_hook(rec: Dict[str, Any]) -> None:
    """Call ``info["on_stop"]`` ("colabmagic.module:function"), what a service undoes once it is gone
    (sshd: the account's password state), however it was stopped."""
    hook = str((rec.get("spec", {}).get("info") or {}).get("on_stop") or "")
    module_name, _, function = hook.partition(":")
    if not module_name.startswith("colabmagic.") or not function.isidentifier():
        return
    import importlib

    try:
        getattr(importlib.import_module(module_name), function)()
    except Exception as exc:  # a failed undo must not keep the service from being recorded as stopped
        with open(log_path(str(rec.get("name", "service"))), "ab") as fh:
            fh.write(f"[colabmagic] {hook} failed on stop: {exc}\n".encode())


def services_dir() -> Path:
    return paths.subdir("services")


def log_path(name: str) -> Path:
    return paths.subdir("logs") / f"{name}.log"


def keeper_dir() -> Path:
    return paths.subdir("keeper")


def _keeper_identity() -> Optional[ProcessIdentity]:
    """The running keeper of this home, or None (none recorded, or the record is not that process)."""
    try:
        ident = ProcessIdentity.from_dict(json.loads((keeper_dir() / "keeper.json").read_text()))
    except (OSError, ValueError):
        return None
    if ident is None or KEEPER_SCRIPT not in ident.cmdline or not ident.alive():
        return None
    return ident


def _nudge(keeper: ProcessIdentity) -> None:
    """Ask the keeper to read its spec files again (only the very process recorded)."""
    if keeper.alive():
        _kill(keeper.pid, signal.SIGUSR1)


# Keepers this process started and that may not have said who they are yet (home -> the launcher
# process, which forks the keeper and exits at once). Process-level bookkeeping, not user state.
_starting: Dict[str, subprocess.Popen] = {}


def _reap() -> None:
    for home, proc in list(_starting.items()):
        if proc.poll() is not None:
            del _starting[home]


def _hand_over(service: Service, keeper_spec: Dict[str, Any]) -> Optional[ProcessIdentity]:
    """Give ``keeper_spec`` to the running keeper, or start one; the keeper's identity, None if still starting.

    Under the keeper's lock, so a keeper that has just found nothing to do and is
    exiting is never handed work: it exits holding the lock, and a new one starts.
    A new keeper reads the spec when it starts: nobody waits for it here.
    """
    import fcntl

    lock = os.open(keeper_dir() / "keeper.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        paths.write_file(service.spec_path, marshal.dumps(keeper_spec), durable=False)
        keeper = _keeper_identity()
        if keeper is None and str(paths.home()) in _starting:
            # One we started a moment ago (warm_up) and not up yet: never a second keeper for a home,
            # and no waiting for its interpreter here. It writes keeper.json before its first look at
            # the specs, so the spec written above is seen by that look, or (once keeper.json is
            # there) nudged; Launch.wait learns the keeper's identity.
            return None
        if keeper is not None:
            _nudge(keeper)
            return keeper
        _start_keeper()
        return None
    finally:
        os.close(lock)


def warm_up() -> None:
    """Start the home's keeper now if none runs, without waiting for it: a start that follows
    shortly (within the keeper's idle grace) finds it up instead of waiting for an interpreter."""
    import fcntl

    _reap()
    lock = os.open(keeper_dir() / "keeper.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _keeper_identity() is None and str(paths.home()) not in _starting:
            _start_keeper()
    finally:
        os.close(lock)


def settle() -> None:
    """Reap the launcher of a keeper this process started ahead of a start that then failed
    (it exits as soon as the keeper has said who it is): no zombie is left in the kernel."""
    _wait_keeper()


def _start_keeper() -> None:
    try:
        (keeper_dir() / "keeper.json").unlink()
    except FileNotFoundError:
        pass
    # Built on purpose, never the kernel's; each daemon gets its own from its spec.
    with open(paths.subdir("logs") / "keeper.log", "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", KEEPER_SCRIPT, str(services_dir()), str(keeper_dir())],
            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True, env=daemon_environment.minimal(), close_fds=True,
        )
    _starting[str(paths.home())] = proc


def _wait_keeper(timeout: float = 10.0) -> Optional[ProcessIdentity]:
    """The home's keeper; one this process started is waited for until it has said who it is."""
    proc = _starting.pop(str(paths.home()), None)
    if proc is not None:  # it exits once the keeper (never a child, nor a zombie, of ours) wrote keeper.json
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _starting[str(paths.home())] = proc
    return _keeper_identity()


class Service:
    """A handle to one supervised daemon, as recorded on disk."""

    def __init__(self, name: str):
        self.name = name
        self.reused = False

    # --- what is on disk -------------------------------------------------
    @property
    def record_path(self) -> Path:
        return services_dir() / f"{self.name}.json"

    @property
    def run_path(self) -> Path:
        return services_dir() / f"{self.name}.run.json"

    @property
    def spec_path(self) -> Path:
        return services_dir() / f"{self.name}.spec"  # marshal: the keeper reads it without importing json

    @property
    def log(self) -> Path:
        return log_path(self.name)

    def record(self) -> Dict[str, Any]:
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return {}

    def run(self) -> Dict[str, Any]:
        """The keeper's run file for this start of the service ({} before the keeper took it)."""
        try:
            run = json.loads(self.run_path.read_text())
        except (OSError, ValueError):
            return {}
        token = self.token
        if not isinstance(run, dict) or (token and run.get("token") not in (None, token)):
            return {}
        return run

    @property
    def info(self) -> Dict[str, Any]:
        """The facts the service recorded, as plain JSON (each service reads them through its typed
        record, services/records.py; the supervisor itself reads only ``runtime_dirs`` and ``on_stop``)."""
        return dict(self.record().get("spec", {}).get("info", {}))

    def update_info(self, **facts: Any) -> None:
        """Add facts (a public address, say) to the record; readers see them at once."""
        rec = self.record()
        rec.setdefault("spec", {}).setdefault("info", {}).update(facts)
        _save_record(self.record_path, rec)

    @property
    def keeper(self) -> Optional[ProcessIdentity]:
        ident = ProcessIdentity.from_dict(self.record().get("keeper"))
        if ident is None and self.exists():  # launched, not waited for: the home's keeper, once it said who it is
            current = _wait_keeper()
            if current is not None and self.run().get("keeper_pid") in (None, current.pid):
                return current
        return ident

    @property
    def child(self) -> Optional[ProcessIdentity]:
        return ProcessIdentity.from_dict(self.run().get("child"))

    @property
    def token(self) -> Optional[str]:
        return self.record().get("token")

    @property
    def pid(self) -> Optional[int]:
        child = self.child
        return child.pid if child and child.alive() else None

    @property
    def restarts(self) -> int:
        return int(self.run().get("restarts", 0))

    @property
    def started_at(self) -> float:
        return float(self.record().get("started_at", 0.0))

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.started_at) if self.alive() else 0.0

    def exists(self) -> bool:
        return self.record_path.exists()

    def writing_soon(self) -> None:
        """Tell the keeper the daemon is about to write (a download queued), so that its write-behind
        (``ServiceSpec.write_behind``) follows from the start rather than at its next idle look."""
        keeper = self.keeper
        if keeper is not None:
            _nudge(keeper)

    # --- health ------------------------------------------------------------
    def keeper_alive(self) -> bool:
        """The keeper is running and still supervises this service (it has not given it up)."""
        keeper = self.keeper
        if not (keeper and keeper.alive()):
            return False
        run = self.run()
        return run.get("keeper_pid") in (None, keeper.pid) and run.get("status") not in TERMINAL

    def child_alive(self) -> bool:
        child = self.child
        return bool(child and child.alive())

    def alive(self) -> bool:
        """Our keeper is running (and so the daemon is running or about to be restarted)."""
        return self.keeper_alive()

    @property
    def status(self) -> str:
        if not self.exists():
            return "absent"
        if self.keeper_alive():
            return str(self.run().get("status", "starting"))
        if self.child_alive():
            return "unsupervised"
        return "stopped"

    def log_tail(self, lines: int = 15) -> List[str]:
        return log_tail(self.log, lines)

    # --- stopping --------------------------------------------------------
    def _our_pids(self) -> List[int]:
        token = self.token
        return procfs.processes_with_env(TOKEN_ENV, token) if token else []

    def stop(self, timeout: Optional[float] = None, keep: Sequence[str] = ()) -> bool:
        """SIGTERM the group, wait, then SIGKILL. A second stop is a no-op. True if anything ran.

        The service's runtime folders go too, except those in ``keep`` (what its replacement uses).
        """
        rec = self.record()
        if not rec:
            return False
        timeout = float(timeout if timeout is not None else rec.get("spec", {}).get("stop_timeout", 10))
        keeper = self.keeper
        child = self.child
        supervised = bool(keeper and keeper.alive() and self.run().get("keeper_pid") in (None, keeper.pid))
        ran = bool(child and child.alive())
        try:
            self.spec_path.unlink()  # no longer wanted: the keeper stops the daemon and does not restart it
        except FileNotFoundError:
            pass
        deadline = time.monotonic() + timeout
        if supervised and keeper is not None and self.run():
            ran = ran or self.run().get("status") not in TERMINAL
            _nudge(keeper)
            # The keeper sends SIGTERM, then SIGKILL after the spec's stop_timeout, and says "stopped".
            while time.monotonic() < deadline + 1 and keeper.alive():
                if self.run().get("status") == "stopped":
                    break
                time.sleep(0.01)
        elif child and child.alive():
            _signal_group(procfs.pgid(child.pid) or child.pid, signal.SIGTERM)
            while time.monotonic() < deadline and child.alive():
                time.sleep(0.05)
        if child and child.alive():
            _signal_group(child.pgid or child.pid, signal.SIGKILL)
        # Whatever still carries our token is ours: descendants that left the group, or stubborn ones.
        leftovers = self._our_pids()
        if leftovers:
            ran = True
            for pid in leftovers:
                _kill(pid, signal.SIGTERM)
            end = time.monotonic() + 2
            while time.monotonic() < end and self._our_pids():
                time.sleep(0.05)
            for pid in self._our_pids():
                _kill(pid, signal.SIGKILL)
            end = time.monotonic() + 5
            while time.monotonic() < end and self._our_pids():
                time.sleep(0.05)
        for path in (self.record_path, self.run_path, self.spec_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        if keeper is not None and not any(services_dir().glob("*.spec")):
            # The last service: the keeper leaves too, and a stop leaves nothing of ours behind.
            end = time.monotonic() + 2
            while time.monotonic() < end and keeper.alive():
                time.sleep(0.005)
        _reap()
        _remove_runtime_dirs(rec, keep)
        _run_stop_hook(rec)
        return ran

    def __repr__(self) -> str:
        return f"<Service {self.name} {self.status} pid={self.pid}>"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def adopt(name: str) -> Optional[Service]:
    """The running service ``name`` if the record matches live processes of ours, else None.

    A record whose processes are gone (or whose pid now belongs to another
    program) is removed, and nothing is signalled.
    """
    service = Service(name)
    if not service.exists():
        return None
    if service.keeper_alive():
        return service
    child = service.child
    if child and child.alive():
        return service  # keeper gone, daemon alive: still ours; ensure() restarts it supervised
    rec = service.record()
    keeper = service.keeper
    try:
        service.spec_path.unlink()
    except FileNotFoundError:
        pass
    if keeper is not None:
        _nudge(keeper)  # it forgets a service it gave up (failed, exited), or exits with nothing left
    for path in (service.record_path, service.run_path, service.spec_path):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    _run_stop_hook(rec)
    return None


def running() -> List[Service]:
    """Every recorded service that is still ours and alive."""
    found = []
    for path in sorted(services_dir().glob("*.json")):
        if path.name.endswith((".run.json", ".spec.json")):
            continue
        service = adopt(path.stem)
        if service is not None:
            found.append(service)
    return found


def check_port_free(port: int, what: str) -> None:
    """Raise PortInUseError naming the holder if ``port`` is already listened on."""
    holder = procfs.port_holder(port)
    if holder is not None:
        pid, argv = holder
        who = " ".join(argv)[:120] if pid else "a process we cannot see"
        raise PortInUseError(f"port {port} needed by {what} is already in use by pid {pid} ({who})")


class Launch:
    """A service on its way up: ``wait()`` returns it once ready, or stops it and raises ServiceError.

    Lets a caller start two services and wait for both at once (colabmagic's
    sshd and the tunnel agent that exposes it do not need each other to come up).
    """

    def __init__(self, service: Service, ready: Optional[Callable[[], bool]], started: bool = False):
        self.service = service
        self.ready = ready
        self.started = started

    def wait(self, timeout: float = 30.0) -> Service:
        service = self.service
        if not self.started:  # reused: it was already running and ready
            return service
        keeper = service.keeper
        if keeper is None:  # a keeper started for this service: its identity goes into the record
            keeper = _wait_keeper()
            if keeper is not None:
                rec = service.record()
                rec["keeper"] = keeper.to_dict()
                _save_record(service.record_path, rec)
        deadline = time.monotonic() + timeout
        pause = 0.005  # short at first (most daemons answer within a few hundred ms), then 10 ms
        while True:
            run = service.run()
            if run.get("status") in ("failed", "exited", "backoff", "gave-up") or keeper is None \
                    or not keeper.alive():
                details = service.log_tail()
                service.stop()
                code = run.get("last_exit")
                raise ServiceError(
                    f"{service.name} exited during start-up (status {code})", log=service.log, details=details
                )
            if run.get("status") == "running" and (self.ready is None or _safe(self.ready)):
                return service
            if time.monotonic() > deadline:
                details = service.log_tail()
                service.stop()
                raise ServiceError(
                    f"{service.name} was not ready within {timeout:.0f}s", log=service.log, details=details
                )
            time.sleep(pause)
            pause = min(0.01, pause * 1.5)

    def abort(self) -> None:
        """Stop it (a start that is no longer wanted); a reused service is left running."""
        if self.started:
            self.service.stop()


def start(
    spec: ServiceSpec,
    ready: Optional[Callable[[], bool]] = None,
    timeout: float = 30.0,
    reuse: bool = True,
) -> Service:
    """Start ``spec`` under a keeper and return once ``ready()`` passes.

    With ``reuse``, a healthy running service with the same fingerprint is
    returned as-is (``service.reused`` is True); one with a different
    fingerprint is stopped and started again. On a failed start everything
    started is stopped and ServiceError carries the log tail.
    """
    return launch(spec, ready=ready, reuse=reuse).wait(timeout)


def launch(spec: ServiceSpec, ready: Optional[Callable[[], bool]] = None, reuse: bool = True) -> Launch:
    """Start ``spec`` under the keeper without waiting for it (see ``start`` and ``Launch.wait``)."""
    _reap()
    existing = adopt(spec.name)
    if existing is not None:
        same = existing.record().get("fingerprint") == spec.fingerprint()
        gave_up = existing.run().get("status") == "gave-up"  # its keeper waits to be stopped: start afresh
        if reuse and same and not gave_up and existing.keeper_alive() and (ready is None or _safe(ready)):
            existing.reused = True
            return Launch(existing, ready)
        existing.stop(keep=list(spec.info.get("runtime_dirs") or []))

    token = f"{spec.name}:{secrets.token_hex(8)}"
    service = Service(spec.name)
    log = service.log
    with open(log, "ab") as fh:
        fh.write(f"\n[colabmagic {time.strftime('%Y-%m-%d %H:%M:%S')}] starting {spec.name}\n".encode())
    os.chmod(log, 0o600)
    # Built on purpose, never the kernel's: the daemon passes it on to everything it starts.
    env = daemon_environment.minimal({**spec.env, TOKEN_ENV: token})
    keeper_spec = {
        "name": spec.name,
        "token": token,
        "argv": list(spec.argv),
        "env": env,
        "cwd": spec.cwd,
        "restart": spec.restart,
        "backoff_max": spec.backoff_max,
        "stop_timeout": spec.stop_timeout,
        "write_behind": spec.write_behind,
        "log": str(log),
    }
    for path in (service.run_path, service.spec_path):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    record = {
        "name": spec.name,
        "spec": {
            "argv": list(spec.argv),
            "cwd": spec.cwd,
            "restart": spec.restart,
            "stop_timeout": spec.stop_timeout,
            "info": dict(spec.info),
        },
        "fingerprint": spec.fingerprint(),
        "token": token,
        "keeper": None,
        "started_at": time.time(),
        "log": str(log),
    }
    keeper = _hand_over(service, keeper_spec)
    record["keeper"] = keeper.to_dict() if keeper else None
    _save_record(service.record_path, record)
    return Launch(service, ready, started=True)


def _save_record(path: Path, record: Dict[str, Any]) -> None:
    """A service's record, as JSON. Written afresh by every start, so not fsynced (see paths.write_file)."""
    paths.write_file(path, json.dumps(record, indent=1, sort_keys=True), durable=False)


def _safe(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except Exception:
        return False


def wait_restarted(service: Service, old_child_pid: int, timeout: float = 30.0) -> bool:
    """Wait until the keeper has replaced ``old_child_pid`` with a new daemon."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = service.child
        if child and child.pid != old_child_pid and child.alive():
            return True
        time.sleep(0.1)
    return False
