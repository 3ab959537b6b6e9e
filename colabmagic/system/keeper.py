"""The keeper: a tiny process that runs one daemon and restarts it when it dies.

``python -I keeper.py SPEC.json`` is started by the supervisor in its own
session, so a cell Interrupt or a kernel restart does not reach it. It starts
the daemon in the keeper's own process group (so one group signal reaches
both), restarts it with capped exponential back-off while the spec says so,
reaps every orphaned descendant (it is a child subreaper), and keeps a small
run file that the kernel reads: the daemon's identity, restarts, last exit
status, state.
SIGTERM stops the daemon and then the keeper.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs about 1 MB of RSS in every keeper; the annotations are never evaluated
    from typing import Any, Dict, Optional

# Only what supervision needs is imported (no subprocess, no site): one keeper runs per
# daemon for as long as it runs, so every module here is paid for once per service.

PR_SET_CHILD_SUBREAPER = 36
HEALTHY_AFTER = 30.0  # seconds of uptime after which the back-off starts again from its floor
GIVE_UP_RESTARTS = 10  # more restarts than this within GIVE_UP_WINDOW seconds: stop restarting
GIVE_UP_WINDOW = 120.0


def _log(fh: Any, message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    fh.write(f"[colabmagic {stamp}] {message}\n".encode())
    fh.flush()


def _start_time(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode()
    except OSError:
        return None
    return int(text.rpartition(")")[2].split()[19])


class Child:
    """The daemon: its pid, and its exit status once reaped (None while it runs)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: Optional[int] = None


def spawn(argv: list, env: Dict[str, str], log_fd: int) -> Child:
    """Start ``argv`` with stdin on /dev/null and stdout and stderr into the log, in our process group.

    posix_spawn reports a missing or non-executable program as OSError, as
    subprocess would; only the descriptors 0-2 reach the daemon (Python opens
    everything else close-on-exec); SIGPIPE and SIGXFSZ, which Python ignores,
    are set back to their defaults for it.
    """
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, log_fd, 1),
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
    ]
    sigdef = [s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s]
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsigdef=sigdef)
    return Child(pid)


class Keeper:
    def __init__(self, spec_path: str):
        with open(spec_path) as fh:
            self.spec: Dict[str, Any] = json.load(fh)
        self.run_path = os.path.abspath(self.spec["run_file"])  # before any chdir to the daemon's folder
        self.stopping = False
        self.child: Optional[Child] = None
        self.restarts = 0
        self.restart_times: list = []
        self.last_exit: Optional[int] = None
        self.log = open(self.spec["log"], "ab", buffering=0)

    def write_run(self, status: str) -> None:
        child: Optional[Dict[str, Any]] = None
        if self.child is not None and self.child.returncode is None:
            pid = self.child.pid
            child = {"pid": pid, "start_time": _start_time(pid), "cmdline": [], "pgid": os.getpgid(pid)}
        data = {
            "status": status,
            "keeper_pid": os.getpid(),
            "child": child,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "updated": time.time(),
        }
        tmp = f"{self.run_path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.run_path)

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        if self.child is not None and self.child.returncode is None:
            try:
                os.kill(self.child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def reap_until_child_exits(self) -> int:
        """Wait for the daemon; reap any orphaned descendant that exits meanwhile."""
        assert self.child is not None
        deadline = None
        while True:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + float(self.spec.get("stop_timeout", 10))
            try:
                if deadline is not None:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        if time.monotonic() > deadline:
                            os.kill(self.child.pid, signal.SIGKILL)
                        time.sleep(0.05)
                        continue
                else:
                    pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return self.child.returncode if self.child.returncode is not None else -1
            except InterruptedError:
                continue
            if pid == self.child.pid:
                code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
                self.child.returncode = code
                return code

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            try:
                os.waitpid(-1, os.WNOHANG)  # reap stray orphans while waiting
            except ChildProcessError:
                pass
            time.sleep(0.05)

    def gave_up(self) -> bool:
        """After too many restarts in a short time: record "gave-up", tell the user, wait to be stopped.

        A daemon that dies again and again (a bad config, a port someone took)
        would otherwise be restarted forever with nobody told. The keeper stays,
        so the service shows as "gave-up" in ``%colabmagic status`` until it is
        stopped or started again. The event goes through notify.py (loaded by
        path: this script runs without colabmagic on its path).
        """
        now = time.monotonic()
        window = float(self.spec.get("give_up_window", GIVE_UP_WINDOW))
        self.restart_times = [t for t in self.restart_times if now - t <= window] + [now]
        limit = int(self.spec.get("give_up_restarts", GIVE_UP_RESTARTS))
        if len(self.restart_times) <= limit:
            return False
        self.write_run("gave-up")
        _log(self.log, f"{self.spec['name']} restarted {len(self.restart_times) - 1} times within {window:.0f}s: "
                       "not restarting it again (start it again, or look at this log)")
        try:
            import importlib.util

            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notify.py")
            module_spec = importlib.util.spec_from_file_location("colabmagic_notify", path)
            assert module_spec is not None and module_spec.loader is not None
            notify = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(notify)
            notify.emit("service_gave_up", home_dir=os.path.dirname(os.path.dirname(self.run_path)), wait=True,
                        service=self.spec["name"], restarts=len(self.restart_times) - 1, window=window,
                        last_exit=self.last_exit)
        except Exception as exc:  # the record above already says it; a notification is extra
            _log(self.log, f"could not record the give-up event: {type(exc).__name__}")
        while not self.stopping:
            self.sleep(3600)
        return True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass
        # The keeper's own environment is the minimal one the supervisor built (never the kernel's).
        env = dict(os.environ)
        env.update(self.spec.get("env") or {})
        if self.spec.get("cwd"):
            try:
                os.chdir(self.spec["cwd"])  # the daemon starts in the keeper's folder
            except OSError as exc:
                _log(self.log, f"could not start {self.spec['argv'][0]}: {exc}")
                self.last_exit = 127
                self.write_run("failed")
                return 1
        backoff_floor = float(self.spec.get("backoff_min", 0.5))
        backoff_cap = float(self.spec.get("backoff_max", 10.0))
        backoff = backoff_floor
        restart = bool(self.spec.get("restart", True))
        while not self.stopping:
            started = time.monotonic()
            try:
                self.child = spawn(self.spec["argv"], env, self.log.fileno())
            except OSError as exc:
                _log(self.log, f"could not start {self.spec['argv'][0]}: {exc}")
                self.last_exit = 127
                self.write_run("failed")
                return 1
            self.write_run("running")
            code = self.reap_until_child_exits()
            self.last_exit = code
            if self.stopping:
                break
            _log(self.log, f"{self.spec['name']} exited with status {code}")
            if not restart:
                self.write_run("exited")
                return 0
            if time.monotonic() - started > HEALTHY_AFTER:
                backoff = backoff_floor
            self.restarts += 1
            if self.gave_up():
                break
            self.write_run("backoff")
            _log(self.log, f"restarting {self.spec['name']} in {backoff:.1f}s (restart {self.restarts})")
            self.sleep(backoff)
            backoff = min(backoff * 2, backoff_cap)
        self.write_run("stopped")
        return 0


def main(argv: list) -> int:
    if len(argv) != 2:
        print("usage: keeper.py SPEC.json", file=sys.stderr)
        return 2
    return Keeper(argv[1]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
