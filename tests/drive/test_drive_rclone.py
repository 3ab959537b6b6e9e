"""%drive_sync over a real rclone FUSE mount of a local-folder remote with a long write-back delay.

The remote is a plain folder, so the test reads what really arrived there
(sha256 of the files on the remote's side), never through the mount. The
flush goes through rclone's upload queue with the mount up: the rclone
process serving the mount is the same before and after every sync.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from colabmagic.services import drive
from colabmagic.services.drive import tracking

MB = 1 << 20


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MB):
            h.update(chunk)
    return h.hexdigest()


def configure(ip: Any, env: Dict[str, Path], write_back: str = "5m") -> None:
    ip.cell(f"%config DriveMagics.remote = {str(env['remote'])!r}")
    ip.cell(f"%config DriveMagics.mountpoint = {str(env['mountpoint'])!r}")
    ip.cell(f"%config DriveMagics.write_back = {write_back!r}")
    ip.cell("%config DriveMagics.backend = 'rclone'")


def seed_remote(remote: Path) -> Dict[str, bytes]:
    """An existing 'model' file to be rewritten in place, and a file the cell deletes."""
    model = os.urandom(2 * MB)
    (remote / "model.bin").write_bytes(model)
    (remote / "doomed.txt").write_text("delete me\n")
    patch = os.urandom(64 * 1024)
    expected = bytearray(model)
    expected[4096:4096 + len(patch)] = patch
    return {"model": model, "patch": patch, "model_after": bytes(expected)}


# The user's steps: a 200 MB file, an in-place rewrite at the same size
# (open r+b, seek, overwrite: how preallocated checkpoints are written), a delete.
STEPS = """
import hashlib, os
_h = hashlib.sha256()
with open({mp!r} + '/big.bin', 'wb') as _f:
    for _ in range(200):
        _chunk = os.urandom(1 << 20)
        _h.update(_chunk)
        _f.write(_chunk)
big_sha = _h.hexdigest()
with open({mp!r} + '/model.bin', 'r+b') as _f:
    _f.seek(4096)
    _f.write(PATCH)
os.remove({mp!r} + '/doomed.txt')
remote_had_big_before_sync = os.path.exists({remote!r} + '/big.bin')
from colabmagic.system import supervisor as _sv
mount_pid_before_sync = _sv.adopt('drive-rclone').pid
"""


def mount_pid() -> int:
    from colabmagic.system import supervisor

    svc = supervisor.adopt("drive-rclone")
    assert svc is not None and svc.pid
    return int(svc.pid)


def test_cell_sync_makes_the_remote_hold_exactly_the_new_content(ip: Any, rclone_env: Dict[str, Path]) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    seeds = seed_remote(remote)
    configure(ip, rclone_env, write_back="5m")
    ip.push({"PATCH": seeds["patch"]})

    c = ip.cell("%%drive_sync\n" + STEPS.format(mp=str(mp), remote=str(remote)))
    report = c.value

    # Without the sync, the write-back delay kept the new file off the remote.
    assert ip.user_ns["remote_had_big_before_sync"] is False
    # After it, the remote holds exactly the new content, and the deleted file is gone.
    assert sha256(remote / "big.bin") == ip.user_ns["big_sha"]
    assert (remote / "big.bin").stat().st_size == 200 * MB
    assert sha256(remote / "model.bin") == hashlib.sha256(seeds["model_after"]).hexdigest()
    assert not (remote / "doomed.txt").exists()
    assert isinstance(report, drive.SyncReport)
    assert report.verified and report.method.startswith("sha256")
    outcome = {f.path: (f.change, f.status) for f in report.files}
    assert outcome == {
        "big.bin": ("created", "verified"),
        "model.bin": ("modified", "verified"),
        "doomed.txt": ("deleted", "verified"),
    }
    assert "verified" in repr(report) and "big.bin" in repr(report)
    assert "big.bin" in report._repr_html_() and "sha256" in report._repr_html_()
    # The mount stayed up (the same rclone process) and is usable.
    assert mount_pid() == ip.user_ns["mount_pid_before_sync"]
    assert tracking.is_mounted(str(mp))
    assert (mp / "big.bin").stat().st_size == 200 * MB
    assert ip.cell("_colabmagic.drive").value.mounted


def test_a_plain_unmount_after_the_same_steps_loses_data(ip: Any, rclone_env: Dict[str, Path]) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    seeds = seed_remote(remote)
    configure(ip, rclone_env, write_back="5m")
    ip.push({"PATCH": seeds["patch"]})
    drive.mount(drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp), write_back="5m"))

    ip.cell(STEPS.format(mp=str(mp), remote=str(remote)))
    subprocess.run(["fusermount3", "-u", str(mp)], check=True)

    # What the user believed saved is not on the remote: the new file is missing and the
    # rewritten file still has its old content.
    assert not (remote / "big.bin").exists()
    assert sha256(remote / "model.bin") == hashlib.sha256(seeds["model"]).hexdigest()
    assert sha256(remote / "model.bin") != hashlib.sha256(seeds["model_after"]).hexdigest()


def test_a_failing_remote_is_an_error_naming_the_files(ip: Any, rclone_env: Dict[str, Path]) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    body = (
        "import subprocess\n"
        f"open({str(mp)!r} + '/results-a.csv', 'w').write('a' * 1000)\n"
        f"open({str(mp)!r} + '/results-b.csv', 'w').write('b' * 2000)\n"
        # The remote breaks before the uploads: it becomes read-only (immutable: root too).
        f"subprocess.run(['chattr', '+i', {str(remote)!r}], check=True)\n"
    )
    c = ip.cell("%%drive_sync --timeout 120\n" + body, check=False)

    err = c.error
    assert isinstance(err, drive.DriveSyncError)
    assert "results-a.csv" in err.message and "results-b.csv" in err.message
    assert "results-a.csv" in c.output and "results-b.csv" in c.output
    report = err.report
    assert report is not None and not report.verified
    assert not any(f.status == "verified" for f in report.files)
    assert {f.path for f in report.failed} == {"results-a.csv", "results-b.csv"}
    assert all("not permitted" in f.reason for f in report.failed)
    assert not (remote / "results-a.csv").exists()
    # The mount is back; the files are still there, waiting in the cache.
    assert tracking.is_mounted(str(mp))
    assert (mp / "results-a.csv").read_text() == "a" * 1000


# Written and closed, then synced at once: what a cell that saves and then syncs does. The
# kernel hands each close to rclone after close() returns (only then does rclone queue the upload);
# the sync must wait for rclone to take it, not take an empty queue for "all uploaded".
WRITE_THEN_SYNC = """
with open({mp!r} + '/step{i}.bin', 'wb') as _f:
    _f.write(NEW)
with open({mp!r} + '/model.bin', 'r+b') as _f:
    _f.seek({offset})
    _f.write(PATCH)
%drive_sync --timeout 120
"""


def test_a_sync_straight_after_the_writes_is_verified_every_time(ip: Any, rclone_env: Dict[str, Path]) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    model = bytearray(os.urandom(4 * MB))
    (remote / "model.bin").write_bytes(model)
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%%drive_sync\npass")  # mounts
    pid = mount_pid()
    for i in range(8):
        new = os.urandom(3 * MB + i)
        # An in-place rewrite that spans several FUSE writes (rclone records written ranges).
        patch = os.urandom(MB + 4096)
        offset = (i * 331 * 1024) % (3 * MB)
        model[offset:offset + len(patch)] = patch
        ip.push({"NEW": new, "PATCH": patch})
        c = ip.cell(WRITE_THEN_SYNC.format(mp=str(mp), i=i, offset=offset), check=False)
        assert c.error is None, f"sync {i}: {c.error!r} {getattr(c.error, 'details', '')}"
        report = c.value
        assert report.verified, f"sync {i}: {report.summary()}"
        assert sorted(f.path for f in report.files) == ["model.bin", f"step{i}.bin"]
        # What reached the remote, read there: exactly the bytes written.
        assert sha256(remote / f"step{i}.bin") == hashlib.sha256(new).hexdigest()
        assert sha256(remote / "model.bin") == hashlib.sha256(bytes(model)).hexdigest(), f"sync {i}"
    assert tracking.is_mounted(str(mp)) and mount_pid() == pid  # never remounted


def test_a_new_file_another_process_keeps_open_for_reading_does_not_hold_the_sync(
    ip: Any, rclone_env: Dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader (a log tailer, a data loader) keeps a file just written open: rclone rightly keeps
    it open too, which is not a close still on its way to rclone, so the sync does not wait on it."""
    import subprocess
    import sys

    from colabmagic.services.drive.rclone import flush as rclone_flush

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%%drive_sync\npass")  # mounts
    data = os.urandom(MB)
    ip.push({"DATA": data})
    ip.cell(f"open({str(mp)!r} + '/train.log', 'wb').write(DATA)")
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'rb'); f.read(); "
         "print('open', flush=True); time.sleep(600)", str(mp / "train.log")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        # Were the sync to wait for this file's release, it would wait past its own timeout.
        monkeypatch.setattr(rclone_flush, "RELEASE_WAIT", 600.0)
        report = ip.cell("%drive_sync --timeout 60").value
        assert report.verified and [f.path for f in report.files] == ["train.log"]
        assert sha256(remote / "train.log") == hashlib.sha256(data).hexdigest()
    finally:
        reader.kill()
        reader.wait()


def test_timeout_is_honoured_then_the_mount_is_back_and_a_sync_with_no_changes_says_so(
    ip: Any, rclone_env: Dict[str, Path]
) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%config DriveMagics.bwlimit = '1M'")  # uploads of 12 MB need about 12 s
    ip.cell(f"%%drive_sync\nopen({str(mp)!r} + '/slow.bin', 'wb').write(b'x' * 1000 * 1000)")
    ip.cell(f"open({str(mp)!r} + '/pending.bin', 'wb').write(__import__('os').urandom(12 << 20))")
    started = time.monotonic()
    c = ip.cell("%drive_sync --timeout 3", check=False)
    took = time.monotonic() - started
    assert isinstance(c.error, drive.DriveSyncTimeout), (c.error, getattr(c.error, "details", None))
    assert "timed out" in c.error.message and "pending.bin" in c.error.message
    assert not c.error.report.verified
    # Bounded: the 3 s timeout plus reading the file, far short of the upload's own time.
    assert took < 60
    # The kernel goes on and the mount is up, with the file still readable.
    assert tracking.is_mounted(str(mp))
    assert (mp / "pending.bin").stat().st_size == 12 << 20
    assert ip.cell("1 + 1").value == 2

    ip.cell("%config DriveMagics.bwlimit = ''")
    report = ip.cell("%drive_sync --timeout 120").value
    assert report.verified
    assert [f.path for f in report.files] == ["pending.bin"]
    assert sha256(remote / "pending.bin") == sha256(mp / "pending.bin")

    again = ip.cell("%drive_sync").value
    assert again.ok and not again.changed
    assert "no changes" in again.summary()
    assert "no changes" in ip.cell("%drive_sync").stdout


def test_unmount_leaves_the_bare_mountpoint_unwritable_until_the_next_sync(
    ip: Any, rclone_env: Dict[str, Path]
) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    ip.cell(f"%%drive_sync\nopen({str(mp)!r} + '/a.txt', 'w').write('hello')")
    report = ip.cell("%drive_sync --unmount").value
    assert not report.mounted and not tracking.is_mounted(str(mp))
    assert (remote / "a.txt").read_text() == "hello"
    with pytest.raises(PermissionError):
        open(mp / "stray.txt", "w")
    again = ip.cell("%drive_sync").value
    assert again.mounted and tracking.is_mounted(str(mp))
    assert (mp / "a.txt").read_text() == "hello"


def test_aria2_downloads_into_the_mount_are_paused_around_the_unmount_and_resumed(
    ip: Any, rclone_env: Dict[str, Path], tmp_path: Path
) -> None:
    aria2 = pytest.importorskip("colabmagic.services.aria2")
    from colabmagic.demo.webserver import FileServer, make_file

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    served = tmp_path / "served"
    served.mkdir()
    want = make_file(str(served / "dataset.bin"), 8 * MB, seed=3)
    server = FileServer(str(served), rate=1 * MB).start()  # about 8 s: still running during the sync
    try:
        ip.cell("%%drive_sync\npass")
        daemon = aria2.ensure(aria2.Aria2Config(download_dir=str(mp)))
        (download,) = daemon.add([server.url("dataset.bin")], dir=str(mp))
        assert wait_until(lambda: daemon.get(download.gid).completed > 0)
        (mp / "notes.txt").write_text("a change, so the sync unmounts")

        report = ip.cell("%drive_sync --timeout 120").value
        assert report.ok
        assert "paused 1 aria2 download" in report.note
        # Resumed, not left paused (aria2 may show "waiting" for a moment before it runs again).
        assert wait_until(lambda: daemon.get(download.gid).status in ("active", "complete"))

        daemon.wait([download], timeout=120)
        assert sha256(mp / "dataset.bin") == want
        final = ip.cell("%drive_sync --timeout 120").value
        assert final.verified
        assert sha256(remote / "dataset.bin") == want
    finally:
        server.stop()


def wait_until(probe: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.1)
    return False


def test_a_file_still_open_for_writing_is_named_and_nothing_is_unmounted(
    ip: Any, rclone_env: Dict[str, Path]
) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%%drive_sync\npass")
    ip.cell(f"log = open({str(mp)!r} + '/train.log', 'w'); _ = log.write('step 1'); log.flush()")
    c = ip.cell("%drive_sync", check=False)
    assert "still open for writing" in str(c.error) and "train.log" in str(c.error)
    assert tracking.is_mounted(str(mp))
    ip.cell("log.close()")
    assert ip.cell("%drive_sync").value.verified
    assert (remote / "train.log").read_text() == "step 1"


def test_a_kernel_working_inside_the_mount_is_inside_it_again_after_the_sync(
    ip: Any, rclone_env: Dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    monkeypatch.chdir(rclone_env["remote"].parent)  # restored after the test
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%%drive_sync\npass")
    ip.cell(f"import os; os.chdir({str(mp)!r}); _ = open('relative.txt', 'w').write('one')")
    assert ip.cell("%drive_sync").value.verified
    assert os.getcwd() == str(mp)
    ip.cell("_ = open('relative2.txt', 'w').write('two')")  # lands in the live mount, not a dead one
    assert ip.cell("%drive_sync").value.verified
    assert (remote / "relative.txt").read_text() == "one"
    assert (remote / "relative2.txt").read_text() == "two"


def test_an_interrupt_during_the_flush_stops_it_and_the_mount_comes_back(rclone_env: Dict[str, Path]) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    config = drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp), write_back="5m",
                               bwlimit="1M", timeout=300)
    drive.mount(config)
    (mp / "big.bin").write_bytes(os.urandom(12 << 20))

    def interrupt(fraction: float, message: str) -> None:
        if "uploading" in message:  # the flush is under way: the user presses Stop
            raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        drive.sync(config, progress=interrupt)
    assert time.monotonic() - started < 60  # not the 300 s timeout
    assert tracking.is_mounted(str(mp))
    assert (mp / "big.bin").stat().st_size == 12 << 20
    report = drive.sync(config.with_(bwlimit=""))  # the next sync picks it up
    assert report.verified and [f.path for f in report.files] == ["big.bin"]
    assert sha256(remote / "big.bin") == sha256(mp / "big.bin")


def test_a_new_kernel_adopts_the_mount_and_knows_what_changed_before_it(rclone_env: Dict[str, Path]) -> None:
    import subprocess
    import sys

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    (remote / "old.txt").write_text("old")
    # The first kernel mounts, syncs, writes one more file, and exits.
    script = (
        "from colabmagic.services import drive\n"
        f"c = drive.DriveConfig(backend='rclone', remote={str(remote)!r}, mountpoint={str(mp)!r}, write_back='5m')\n"
        "drive.mount(c)\n"
        f"open({str(mp)!r} + '/a.txt', 'w').write('a')\n"
        "assert drive.sync(c).verified\n"
        f"open({str(mp)!r} + '/b.txt', 'w').write('b')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, env=dict(os.environ))
    # This process plays the restarted kernel.
    found = drive.current()
    assert found is not None and found.mounted and found.pid
    config = drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp), write_back="5m")
    report = drive.sync(config)
    assert report.verified and [(f.path, f.change) for f in report.files] == [("b.txt", "created")]
    assert (remote / "b.txt").read_text() == "b"


def test_track_limits_what_is_walked_and_verified_and_the_report_says_so(
    ip: Any, rclone_env: Dict[str, Path]
) -> None:
    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%config DriveMagics.track = 'runs'")
    report = ip.cell(
        "%%drive_sync\nimport os\n"
        f"os.makedirs({str(mp)!r} + '/runs/7', exist_ok=True)\n"
        f"_ = open({str(mp)!r} + '/runs/7/metrics.json', 'w').write('{{}}')\n"
        f"_ = open({str(mp)!r} + '/scratch.txt', 'w').write('not tracked')\n"
    ).value
    assert report.verified
    assert [f.path for f in report.files] == ["runs/7/metrics.json"]
    assert "only runs is tracked" in report.note
    assert (remote / "runs" / "7" / "metrics.json").exists()
    assert (remote / "scratch.txt").read_text() == "not tracked"  # flushed all the same


def test_downloads_stay_paused_while_left_unmounted_and_resume_with_the_mount(
    ip: Any, rclone_env: Dict[str, Path], tmp_path: Path
) -> None:
    aria2 = pytest.importorskip("colabmagic.services.aria2")
    from colabmagic.demo.webserver import FileServer, make_file

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    served = tmp_path / "served"
    served.mkdir()
    want = make_file(str(served / "weights.bin"), 6 * MB, seed=4)
    server = FileServer(str(served), rate=1 * MB).start()
    try:
        ip.cell("%%drive_sync\npass")
        daemon = aria2.ensure(aria2.Aria2Config(download_dir=str(mp)))
        (download,) = daemon.add([server.url("weights.bin")], dir=str(mp))
        assert wait_until(lambda: daemon.get(download.gid).completed > 0)
        (mp / "notes.txt").write_text("change")

        report = ip.cell("%drive_sync --unmount --timeout 120").value
        assert not report.mounted and "resume when it is mounted again" in report.note
        assert daemon.get(download.gid).status == "paused"  # it would fail to land in the bare folder

        ip.cell("%drive_sync")  # mounts again
        assert wait_until(lambda: daemon.get(download.gid).status in ("active", "complete"))
        daemon.wait([download], timeout=120)
        assert sha256(mp / "weights.bin") == want
        assert ip.cell("%drive_sync --timeout 120").value.verified
        assert sha256(remote / "weights.bin") == want
    finally:
        server.stop()


def test_after_rclone_is_killed_the_mount_comes_back_and_the_next_sync_uploads_what_was_pending(
    ip: Any, rclone_env: Dict[str, Path]
) -> None:
    import signal

    from colabmagic.system import supervisor

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    ip.cell(f"%%drive_sync\n_ = open({str(mp)!r} + '/a.txt', 'w').write('a')")
    (mp / "pending.txt").write_text("written, not yet uploaded")
    service = supervisor.adopt("drive-rclone")
    # FUSE delivers the file's release to rclone after close() returns: kill rclone only once
    # it has the file queued for upload (what "written, pending upload" means).
    from colabmagic.services.drive.rclone import rc_call

    port = int(service.info["rc_port"])
    assert wait_until(lambda: rc_call(port, "vfs/stats")["diskCache"]["uploadsQueued"] >= 1, timeout=30)
    old = service.pid
    os.kill(old, signal.SIGKILL)
    # The keeper restarts rclone, which first detaches the dead mount.
    assert wait_until(lambda: service.pid not in (None, old) and tracking.mount_alive(str(mp)), timeout=60)
    assert (mp / "a.txt").read_text() == "a"
    report = ip.cell("%drive_sync --timeout 120").value
    assert report.verified and [f.path for f in report.files] == ["pending.txt"]
    assert (remote / "pending.txt").read_text() == "written, not yet uploaded"



def test_a_close_that_reaches_rclone_after_the_flush_began_is_waited_for(rclone_env: Dict[str, Path]) -> None:
    """The release race, made wide on purpose: the kernel hands a file's last close to rclone after
    close() has returned, and only then does rclone queue the upload. Here the close comes a second
    after the flush began; the flush must wait for it rather than take the empty queue for done."""
    import threading

    from colabmagic.services.drive import rclone as rclone_backend

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    config = drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp), write_back="5m")
    drive.mount(config)
    data = os.urandom(2 * MB)
    writer = threading.Timer(1.0, lambda: (mp / "late.bin").write_bytes(data))
    backend = rclone_backend.RcloneBackend(config.resolved())
    writer.start()
    try:
        backend.flush(time.monotonic() + 120, {"late.bin": (len(data), hashlib.sha256(data).hexdigest())}, "sha256")
    finally:
        writer.join()
    assert (remote / "late.bin").read_bytes() == data


def test_a_file_the_write_back_uploaded_before_the_sync_is_not_waited_for(
    ip: Any, rclone_env: Dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a short write-back delay rclone uploads on its own; such a file is never in the queue
    when the sync looks. The remote holding it as written is enough: no wait for a close."""
    from colabmagic.services.drive.rclone import flush as rclone_flush

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="1s")
    ip.cell("%%drive_sync\npass")  # mounts
    data = os.urandom(MB)
    (mp / "early.bin").write_bytes(data)
    assert wait_until(lambda: (remote / "early.bin").exists() and (remote / "early.bin").read_bytes() == data)
    # Were the sync to wait for this file to pass through the queue, it would wait past its timeout.
    monkeypatch.setattr(rclone_flush, "RELEASE_WAIT", 600.0)
    report = ip.cell("%drive_sync --timeout 60").value
    assert report.verified and [f.path for f in report.files] == ["early.bin"]


def test_content_changed_on_the_remote_after_the_upload_is_caught_by_reading_it_back(
    ip: Any, rclone_env: Dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification reads the file back from the remote, not what the upload hashed on its way
    (rclone's own post-upload check is off for a local folder: it hashed the same bytes in memory
    twice). The remote's copy altered after the upload, same size: the sync fails, naming it."""
    from colabmagic.services.drive import rclone as rclone_backend

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    flush = rclone_backend.RcloneBackend.flush

    def flush_then_damage(self: Any, *args: Any, **kwargs: Any) -> None:
        flush(self, *args, **kwargs)
        with open(remote / "weights.bin", "r+b") as fh:  # one byte flipped where it landed
            fh.seek(MB)
            byte = fh.read(1)
            fh.seek(MB)
            fh.write(bytes([byte[0] ^ 0xFF]))

    monkeypatch.setattr(rclone_backend.RcloneBackend, "flush", flush_then_damage)
    c = ip.cell(f"%%drive_sync\nopen({str(mp)!r} + '/weights.bin', 'wb').write(__import__('os').urandom(3 << 20))",
                check=False)
    assert isinstance(c.error, drive.DriveSyncError), c.error
    failed = {f.path: f.reason for f in c.error.report.failed}
    assert failed == {"weights.bin": "sha256 differs on the remote (stale content)"}
    assert (remote / "weights.bin").stat().st_size == 3 << 20


def test_the_mount_skips_rclone_checks_that_cannot_find_anything_only_for_a_local_folder(
    rclone_env: Dict[str, Path]
) -> None:
    """A local-folder remote: rclone's post-upload check would hash the same bytes twice in memory,
    so it is off (the sync reads the file back); fingerprints leave out slow hashes. A named remote
    (Drive, SFTP, S3) keeps rclone's check: its hash comes from the remote."""
    from colabmagic.services.drive.rclone import remote as rclone_remote

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    drive.mount(drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp), write_back="5m"))
    argv = open(f"/proc/{mount_pid()}/cmdline", "rb").read().decode().split("\0")
    assert argv[1] == "mount" and "--ignore-checksum" in argv and "--vfs-fast-fingerprint" in argv
    assert [r for r in ("/data/x", "./x", "x", "/a:b", "gdrive:x", ":local:/x", "my remote:dir", "s3:bucket")
            if rclone_remote.local_path(r)] == ["/data/x", "./x", "x", "/a:b"]


def test_each_file_is_open_for_reading_before_its_upload_is_started(
    ip: Any, rclone_env: Dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync reads the changed files through the mount while rclone uploads them, but starts the
    upload of a file only once it holds the file open: a file opened just as its upload completes
    can be read wrongly by rclone. Here each open comes a second late; no upload may start first."""
    import threading

    from colabmagic.services.drive import rclone as rclone_backend
    from colabmagic.services.drive import reading

    remote, mp = rclone_env["remote"], rclone_env["mountpoint"]
    configure(ip, rclone_env, write_back="5m")
    events: list = []
    lock = threading.Lock()
    open_for_reading = reading._open_for_reading

    def late_open(path: str, direct: bool) -> int:
        time.sleep(1.0)
        fd = open_for_reading(path, direct)
        with lock:
            events.append(("open", os.path.basename(path)))
        return fd

    rc = rclone_backend.RcloneBackend.rc
    names: Dict[int, str] = {}

    def recording_rc(self: Any, command: str, params: Any = None, timeout: float = 10.0) -> Any:
        answer = rc(self, command, params, timeout)
        if command == "vfs/queue":
            names.update({int(i["id"]): str(i["name"]) for i in answer.get("queue") or []})
        elif command == "vfs/queue-set-expiry":
            with lock:
                events.append(("upload", names.get(int(params["id"]), "?")))
        return answer

    monkeypatch.setattr(reading, "_open_for_reading", late_open)
    monkeypatch.setattr(rclone_backend.RcloneBackend, "rc", recording_rc)
    body = "".join(f"open({str(mp)!r} + '/part{i}.bin', 'wb').write(b'{i}' * ({i} + 1) * 300000)\n" for i in range(3))
    report = ip.cell("%%drive_sync --timeout 120\n" + body).value
    assert report.verified and sorted(f.path for f in report.files) == ["part0.bin", "part1.bin", "part2.bin"]
    for i in range(3):
        name = f"part{i}.bin"
        assert ("upload", name) in events, events
        assert events.index(("open", name)) < events.index(("upload", name)), events
        assert (remote / name).read_bytes() == str(i).encode() * (i + 1) * 300000
