"""%aria2 BitTorrent from a private loopback swarm, and a download into a real rclone FUSE mount."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from support.aria2_helpers import sha256

from colabmagic.demo.swarm import LocalSwarm
from colabmagic.demo.webserver import make_file
from colabmagic.services import aria2 as service


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    root = tmp_path_factory.mktemp("swarm")
    payload = root / "seed" / "shared.bin"
    payload.parent.mkdir()
    digest = make_file(str(payload), 5_000_000, seed=7)
    with LocalSwarm(str(payload), str(root / "work")) as running:
        yield {"swarm": running, "sha256": digest}


def test_magnet_from_local_swarm(aip: Any, swarm: Dict[str, Any], dl_dir: Path, cm_home: Path) -> None:
    magnet = swarm["swarm"].magnet
    assert "tr=http%3A%2F%2F127.0.0.1%3A" in magnet
    d = aip.cell(f'%aria2 add "{magnet}" --wait').value
    assert d.fetched and d.progress == 1.0  # complete, or whole and seeding its last moment (seed time 0)
    assert d.path == str(dl_dir / "shared.bin")
    assert sha256(d.path) == swarm["sha256"]
    conf = (cm_home / "aria2" / "aria2.conf").read_text()
    # Offline mode: the swarm worked with every outside contact off.
    for line in ("enable-dht=false", "enable-dht6=false", "bt-enable-lpd=false", "bt-tracker=\n"):
        assert line in conf


def test_wait_ends_when_the_torrent_is_whole_while_it_goes_on_seeding(
    aip: Any, swarm: Dict[str, Any], dl_dir: Path
) -> None:
    """With a seed time, --wait returns once every piece is in and checked (as a libtorrent script's
    is_seeding loop does), not when the seeding ends; the torrent goes on seeding in the background."""
    target = dl_dir / "seeding"
    magnet = swarm["swarm"].magnet
    d = aip.cell(f'%aria2 add "{magnet}" --dir {target} --seed-time 10').value
    daemon = service.current()
    assert daemon is not None
    (whole,) = daemon.wait([d], timeout=60)  # seeding goes on for 10 minutes: a wait for it would time out
    assert whole.seeding and whole.status == "active" and whole.progress == 1.0
    assert sha256(str(target / "shared.bin")) == swarm["sha256"]
    listing = aip.cell("%aria2 status").value
    assert [row[2] for row in listing.rows if row[0] == whole.gid] == ["seeding"]

    # The cell run again while it seeds: aria2 refuses the same torrent twice; the wait follows the
    # one already there instead of failing, and leaves no error row behind.
    again = aip.cell(f'%aria2 add "{magnet}" --dir {target} --seed-time 10 --wait').value
    assert again.gid == whole.gid and again.seeding
    statuses = [row[2] for row in aip.cell("%aria2 status").value.rows]
    assert "error" not in statuses and statuses.count("seeding") == 1, statuses
    aip.cell(f"%aria2 remove {whole.gid}")


def test_torrent_file_from_local_swarm(aip: Any, swarm: Dict[str, Any], dl_dir: Path) -> None:
    target = dl_dir / "from-torrent"
    d = aip.cell(f"%aria2 add {swarm['swarm'].torrent} --dir {target} --wait").value
    assert d.path == str(target / "shared.bin")
    assert sha256(d.path) == swarm["sha256"]


def test_drive_target_is_staged_and_placed_whole(
    aip: Any, serve: Any, payloads: Any, rclone_mount: Dict[str, Path], cm_home: Path
) -> None:
    server = serve(rate=2_000_000)
    _, digest, size = payloads["small.bin"]
    target = rclone_mount["mount"] / "MyDrive" / "data"
    final = target / "small.bin"
    seen_partial: List[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                got = os.stat(final).st_size
            except OSError:
                got = -1
            if 0 <= got < size:
                seen_partial.append(got)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        added = aip.cell(f"%aria2 add {server.url('small.bin')} --dir {target}").value
        assert added.path == str(final)  # the final location, even while staged
        assert added.staged_in and added.staged_in.startswith(str(cm_home))
        done = service.current().wait([added], timeout=120)[0]
    finally:
        stop.set()
        sampler.join(timeout=5)
    assert done.status == "complete" and done.path == str(final)
    assert sha256(str(final)) == digest
    assert seen_partial == [], f"a partial file was visible at the final path: sizes {seen_partial[:5]}"
    assert not Path(done.staged_in or "").exists()  # the local copy is gone once placed


def test_magnet_into_drive_target(aip: Any, swarm: Dict[str, Any], rclone_mount: Dict[str, Path]) -> None:
    target = rclone_mount["mount"] / "torrents"
    d = aip.cell(f'%aria2 add "{swarm["swarm"].magnet}" --dir {target} --wait').value
    assert d.status == "complete" and d.path == str(target / "shared.bin")
    assert sha256(d.path) == swarm["sha256"]
    assert sorted(p.name for p in target.iterdir()) == ["shared.bin"]  # no control or metadata files


def test_space_warning_when_local_disk_is_small(
    aip: Any, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from colabmagic.services.aria2 import placement

    server = serve(rate=2_000_000)  # still running when wait() first sees its size
    d = aip.cell(f"%aria2 add {server.url('small.bin')}").value
    monkeypatch.setattr(placement, "local_free", lambda path: 1000)
    with pytest.warns(service.SpaceWarning, match="not enough free disk"):
        service.current().wait([d], timeout=60)
