"""``%drive_sync --every``: a background verified sync under a training-like loop, then everything is killed.

A writer process (the training loop, standing for the kernel) saves a
checkpoint about every second into a real rclone FUSE mount whose
write-back is 5 minutes, so nothing reaches the remote unless a sync
flushes it. The background syncer runs every 5 s. Then the writer, the
rclone mount (with its keeper, so nothing restarts it) and the syncer are
SIGKILLed at once, as when a runtime dies. Every checkpoint the syncer
reported verified must be on the remote (a plain folder, read directly)
with the sha256 the writer recorded, and the last verified time must be at
most one interval plus one sync old at the moment of the kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest
from support.webhook import Receiver, assert_no_canary, enable
from test_drive_rclone import configure

from colabmagic.services.drive import background
from colabmagic.system import supervisor

INTERVAL = 5.0

# The training loop: a new checkpoint every ~1 s (written whole, then closed), its sha256 noted outside
# the mount as soon as it is closed.
WRITER = """
import hashlib, json, os, sys, time
mp, manifest = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(mp, "ckpt"), exist_ok=True)
step = 0
while True:
    step += 1
    data = os.urandom(256 * 1024 + step)
    name = f"ckpt/step-{step:04d}.pt"
    with open(os.path.join(mp, name), "wb") as fh:
        fh.write(data)
    with open(manifest, "a") as fh:
        fh.write(json.dumps({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "t": time.time()}) + "\\n")
    time.sleep(1.0)
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kill_with_keeper(*service_names: str) -> None:
    """SIGKILL the keeper (one for the whole home), then each daemon's process group: nothing restarts them."""
    services = [supervisor.adopt(name) for name in service_names]
    groups = []
    for svc in services:
        assert svc is not None and svc.keeper is not None and svc.child is not None
        groups.append(svc.child.pgid or svc.child.pid)
    os.kill(services[0].keeper.pid, signal.SIGKILL)
    for group in groups:
        os.killpg(group, signal.SIGKILL)


def test_training_loop_every_reported_checkpoint_survives_a_kill(ip: Any, rclone_env: Dict[str, Path],
                                                                 tmp_path: Path) -> None:
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%config DriveMagics.timeout = 120.0")
    mp, remote = rclone_env["mountpoint"], rclone_env["remote"]
    c = ip.cell(f"bg = %drive_sync --every {INTERVAL:g}s")
    bg = ip.user_ns["bg"]
    assert bg.running and bg.interval == INTERVAL and bg.mountpoint == str(mp)
    # Its own session: the kernel's Interrupt and restart (signals to the kernel's group) do not reach it.
    assert bg.pid and os.getsid(bg.pid) != os.getsid(0) and os.getpgid(bg.pid) != os.getpgid(0)
    # A new kernel (another Python process, same home) finds the same syncer running.
    seen = subprocess.run([sys.executable, "-c", "from colabmagic.services.drive import background as b; "
                           "s = b.current(); print(s.running, s.pid)"], capture_output=True, text=True, check=True)
    assert seen.stdout.split() == ["True", str(bg.pid)]
    manifest = tmp_path / "manifest.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(mp), str(manifest)], start_new_session=True)
    try:
        # Four syncs or more while the loop writes (about 25 s), then the kill comes between two syncs.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = json.loads(background.state_path().read_text())
            if int(state.get("runs", 0)) >= 4:
                break
            time.sleep(0.5)
        time.sleep(INTERVAL / 2)
        status = ip.cell("%colabmagic status").stdout
        assert "drive-sync" in status and "last verified" in status
        shown = ip.cell("_colabmagic.drive").value
        assert "last verified" in shown.background and "files" in shown.background
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        killed_at = time.time()
        _kill_with_keeper("drive-rclone", background.SERVICE)
    state = json.loads(background.state_path().read_text())
    written = {}
    for line in manifest.read_text().splitlines():
        entry = json.loads(line)
        written[entry["path"]] = entry["sha256"]
    reported = {path for run in state["history"] for path, _size, _status in run["files"]}
    assert state["runs"] >= 4, state
    assert len(reported) >= 3, f"the syncer reported too few checkpoints verified: {sorted(reported)}"
    # With a 5-minute write-back, nothing is on the remote that a sync did not flush.
    for path in sorted(reported):
        assert (remote / path).exists(), f"{path} was reported verified but is not on the remote"
        assert sha256(remote / path) == written[path], f"{path} on the remote differs from what was written"
    longest = max(run["seconds"] for run in state["history"])
    age = killed_at - state["last_verified"]
    assert age <= INTERVAL + longest + 2.0, (
        f"the last verified time was {age:.1f}s old at the kill (interval {INTERVAL}s, longest sync {longest:.1f}s)")
    assert c.error is None


def test_every_refuses_on_colab_and_stops_with_off(ip: Any, colab_env: Dict[str, Any]) -> None:
    ip.cell("%config DriveMagics.backend = 'colab'")
    ip.cell(f"%config DriveMagics.mountpoint = {str(colab_env['mountpoint'])!r}")
    c = ip.cell("%drive_sync --every 10m", check=False)
    assert c.error is not None and "Traceback" not in c.output
    assert "needs the rclone backend" in c.output and "flush_and_unmount" in c.output
    assert supervisor.adopt(background.SERVICE) is None
    off = ip.cell("%drive_sync --every off")
    assert "no background Drive sync was running" in off.stdout + repr(off.value)


@pytest.fixture
def notified(ip: Any, cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    receiver = enable(ip, monkeypatch)
    yield receiver
    receiver.stop()


def test_a_failing_background_sync_notifies_and_then_recovers(ip: Any, rclone_env: Dict[str, Path],
                                                             notified: Receiver, cm_home: Path) -> None:
    configure(ip, rclone_env, write_back="5m")
    ip.cell("%config DriveMagics.timeout = 15.0")
    mp, remote = rclone_env["mountpoint"], rclone_env["remote"]
    ip.cell("%drive_sync --every 1h")
    (mp / "out").mkdir()
    (remote / "out").mkdir(exist_ok=True)
    subprocess.run(["chattr", "+i", str(remote / "out")], check=True)  # even root cannot add a file there
    try:
        (mp / "out" / "result.bin").write_bytes(os.urandom(100_000))
        background.now(timeout=60)
        failed = notified.wait_for("drive_sync_failed", timeout=30)
        assert failed is not None, "no drive_sync_failed notification"
        assert failed["mountpoint"] == str(mp) and failed["error"]
        assert "FAILING" in ip.cell("%colabmagic status").stdout
    finally:
        subprocess.run(["chattr", "-i", str(remote / "out")], check=True)
    background.now(timeout=60)
    recovered = notified.wait_for("drive_sync_recovered", timeout=30)
    assert recovered is not None, ("no drive_sync_recovered notification", background.state_path().read_text(),
                                   supervisor.adopt(background.SERVICE).log_tail(10))
    assert recovered["files"] >= 1
    assert (remote / "out" / "result.bin").read_bytes() == (mp / "out" / "result.bin").read_bytes()
    shown = ip.cell("1").stdout
    assert "works again" in shown or "works again" in (cm_home / "events.jsonl").read_text()
    assert_no_canary(notified, cm_home)


def test_a_file_written_during_a_flush_is_synced_next_time_not_claimed(ip: Any, rclone_env: Dict[str, Path],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop does not stop for a sync: a checkpoint saved while rclone flushes was not verified by it."""
    from colabmagic.services import drive
    from colabmagic.services.drive.rclone import RcloneBackend

    configure(ip, rclone_env, write_back="5m")
    mp, remote = rclone_env["mountpoint"], rclone_env["remote"]
    ip.cell(f"%%drive_sync\nopen({str(mp / 'first.pt')!r}, 'wb').write(b'a' * 1000)")
    original = RcloneBackend.flush

    def flush_while_the_loop_writes(self: Any, *args: Any, **kwargs: Any) -> None:
        (mp / "during.pt").write_bytes(b"b" * 2000)  # saved after the changes were read, before the flush ended
        original(self, *args, **kwargs)

    (mp / "before.pt").write_bytes(b"c" * 3000)
    monkeypatch.setattr(RcloneBackend, "flush", flush_while_the_loop_writes)
    report = ip.cell("%drive_sync").value
    monkeypatch.setattr(RcloneBackend, "flush", original)
    assert [f.path for f in report.files] == ["before.pt"]
    following = drive.sync(drive.DriveConfig(backend="rclone", remote=str(remote), mountpoint=str(mp),
                                             write_back="5m"))
    assert [f.path for f in following.files] == ["during.pt"] and following.verified
    assert (remote / "during.pt").read_bytes() == b"b" * 2000
