"""Row 7: the cost of supervision. Memory and CPU of colabmagic's own processes (the keepers).

Everything runs at once, each started by its magic in one home: sshd and one
tunnel (``%tunnel ssh --via ssh`` to the loopback relay), the VNC desktop
(``%vnc start``), the aria2 daemon (``%aria2 start``) and an rclone mount of a
local-folder remote (``%%drive_sync``). The keepers are the processes named
in the service records, each counted once (one keeper runs every daemon of a
home today; there used to be one per daemon); the daemons themselves are not
counted. Per sample: the keepers' VmRSS summed (each counts the
interpreter's shared pages again), their Pss summed (shared pages divided
among the processes that map them: what they use together), and the CPU
time (utime + stime) they spend over an idle window. No recipe supervises
anything, so the comparison is the goal of 30 MB.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List

from .harness import Context, Result, stop_services, which

GOAL_MB = 30.0
IDLE_WINDOW = 10.0  # seconds over which the keepers' CPU time is taken


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` so far: /proc/PID/schedstat's nanoseconds (stat's clock ticks are 10 ms)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keepers() -> Dict[str, int]:
    """Service name -> its keeper's pid, for every running service of the current home."""
    from colabmagic.system import supervisor

    found = {}
    for svc in supervisor.running():
        keeper = svc.keeper
        if keeper is not None and keeper.alive():
            found[svc.name] = keeper.pid
    return found


def sample(pids: List[int]) -> Dict[str, float]:
    return {
        "rss_mb": sum(_status_kb(p, "VmRSS") for p in pids) / 1024,
        "pss_mb": sum(_pss_kb(p) for p in pids) / 1024,
    }


def _start_everything(ctx: Context, relay: Any) -> None:
    from benchmarks.ssh import _free_port
    from benchmarks.vnc import PASSWORD, free_display

    r = relay.relay
    ctx.cell(f"%tunnel ssh --via ssh --relay {r.relay} --relay-host-key '{r.host_key}' "
             f"--relay-key-file {r.client_key} --remote-port {_free_port()} --key '{relay.user_pub}'")
    os.environ["VNC_PASSWORD"] = PASSWORD
    try:
        ctx.cell(f"%vnc start --display :{free_display(set())}")
    finally:
        os.environ.pop("VNC_PASSWORD", None)
    ctx.cell(f"%config Aria2Magics.download_dir = {str(ctx.folder('aria2-dl'))!r}")
    ctx.cell("%aria2 start")
    remote, mountpoint = ctx.folder("sup-remote"), ctx.work / "sup-mnt"
    ctx.cell(f"%config DriveMagics.remote = {str(remote)!r}")
    ctx.cell(f"%config DriveMagics.mountpoint = {str(mountpoint)!r}")
    ctx.cell("%config DriveMagics.backend = 'rclone'")
    ctx.shell.run_cell("%%drive_sync\npass\n", store_history=False, silent=True)


def _unmount(ctx: Context) -> None:
    from colabmagic.services.drive import tracking, writers

    mountpoint = ctx.work / "sup-mnt"
    try:
        ctx.cell("%drive_sync --unmount")
    except RuntimeError as exc:
        ctx.say(f"supervision: unmount failed: {str(exc)[:200]}")
    if tracking.is_mounted(str(mountpoint)):
        import subprocess

        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
    writers.unguard(str(mountpoint))


def run(ctx: Context, rows: List[str]) -> List[Result]:
    from benchmarks.ssh import PACKAGE, Relay
    from colabmagic.services.vnc import DESKTOP_PACKAGES, TIGERVNC_PACKAGES
    from colabmagic.system import installer

    if not (shutil.which("rclone") and shutil.which("fusermount3") and os.path.exists("/dev/fuse")):
        raise RuntimeError("rclone, fusermount3 and /dev/fuse are needed")
    which("aria2c")
    installer.ensure_packages([PACKAGE, *TIGERVNC_PACKAGES, *DESKTOP_PACKAGES])  # not measured
    relay = Relay(ctx)
    try:
        ctx.fresh_home("supervision")
        try:
            _start_everything(ctx, relay)
            found = keepers()
            ctx.say(f"supervision: {len(set(found.values()))} keeper(s) for {', '.join(sorted(found))}")
            pids = sorted(set(found.values()))  # one keeper may run several services: counted once
            samples: List[Dict[str, float]] = []
            cpu: List[float] = []
            for _ in range(max(ctx.runs, 3)):
                before = sum(_cpu_seconds(p) for p in pids)
                time.sleep(IDLE_WINDOW)
                cpu.append(sum(_cpu_seconds(p) for p in pids) - before)
                samples.append(sample(pids))
        finally:
            _unmount(ctx)
            stop_services()
    finally:
        relay.stop()
    what = f"{len(pids)} keeper(s) for {len(found)} services ({', '.join(sorted(found))})"
    return [
        Result(row="Supervision: memory (RSS)", what=what + ", VmRSS summed", unit="MB",
               ours=[s["rss_mb"] for s in samples], theirs=[GOAL_MB] * len(samples),
               ours_label="keepers", theirs_label="the goal (no recipe supervises)",
               note="RSS summed counts the Python interpreter's shared pages once per keeper; "
                    "the PSS row shares them out (what the keepers use together)"),
        Result(row="Supervision: memory (PSS)", what=what + ", Pss summed", unit="MB",
               ours=[s["pss_mb"] for s in samples], theirs=[GOAL_MB] * len(samples),
               ours_label="keepers", theirs_label="the goal"),
        Result(row="Supervision: CPU", what=f"keepers' CPU time per {IDLE_WINDOW:.0f} s, services idle",
               unit="ms", ours=cpu, theirs=[], ours_label="keepers"),
    ]
