"""The keeper starts its daemon as subprocess did (it no longer imports subprocess): folder, stdin,
descriptors, signal dispositions, a missing program; and it still brings a killed daemon back."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

from colabmagic.system import probes, supervisor

REPORT = textwrap.dedent(
    """
    import json, os, sys, time
    ignored = int(open(sys.argv[2]).read().split()[1], 16)  # the shell's, as the keeper handed it down
    facts = {"cwd": os.getcwd(), "stdin": os.readlink("/proc/self/fd/0"), "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
             "sigpipe_ignored": bool(ignored & (1 << 12)), "pgid": os.getpgid(0), "ppid": os.getppid(), "pid": os.getpid()}
    with open(sys.argv[1], "a") as fh:
        fh.write(json.dumps(facts) + "\\n")
    print("daemon says hello", flush=True)
    while True:
        time.sleep(1)
    """
)


def _reports(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_daemon_starts_like_subprocess_started_it_and_comes_back_after_a_kill(tmp_path: Path) -> None:
    folder = tmp_path / "work folder"
    folder.mkdir()
    out = tmp_path / "facts.jsonl"
    sig = tmp_path / "sigign.txt"
    # sh (which keeps the dispositions it was given) records them, then becomes the Python reporter.
    script = 'grep "^SigIgn:" /proc/$$/status > "$1"; exec "$2" -c "$3" "$4" "$1"'
    spec = supervisor.ServiceSpec(name="reporter", argv=["/bin/sh", "-c", script, "sh", str(sig), sys.executable,
                                                         REPORT, str(out)], cwd=str(folder), backoff_max=1.0)
    svc = supervisor.start(spec, ready=lambda: len(_reports(out)) >= 1, timeout=30)
    try:
        first = _reports(out)[0]
        assert first["cwd"] == str(folder)
        assert first["stdin"] == "/dev/null"
        assert first["fds"][:3] == [0, 1, 2] and len(first["fds"]) <= 4  # 0-2 (+ the listing's own fd)
        assert not first["sigpipe_ignored"]  # the keeper's SIG_IGN for SIGPIPE (Python's) is not handed down
        keeper_pid = svc.keeper.pid
        # The keeper's child, in a process group of its own (one group signal reaches it and its children).
        assert first["ppid"] == keeper_pid and first["pgid"] == first["pid"]
        assert probes.wait_for(lambda: "daemon says hello" in svc.log.read_text(), timeout=30, interval=0.1)

        os.kill(first["pid"], signal.SIGKILL)
        assert probes.wait_for(lambda: len(_reports(out)) >= 2, timeout=60, interval=0.1), "not restarted"
        again = supervisor.adopt("reporter")
        assert again is not None and again.restarts >= 1 and again.keeper.pid == keeper_pid
    finally:
        svc.stop()


def test_a_missing_program_is_reported_failed(tmp_path: Path) -> None:
    spec = supervisor.ServiceSpec(name="missing", argv=[str(tmp_path / "no-such-daemon")], restart=False)
    svc = None
    try:
        svc = supervisor.start(spec, ready=lambda: False, timeout=5)
    except Exception as exc:  # noqa: BLE001 - the start fails with the log's reason
        assert "could not start" in str(exc) or "no-such-daemon" in str(exc), exc
    finally:
        if svc is not None:
            svc.stop()
    log = supervisor.log_path("missing")
    text = log.read_text() if log.exists() else ""
    assert "could not start" in text and "no-such-daemon" in text, text
