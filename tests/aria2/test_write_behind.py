"""A download is written to disk as it arrives: the keeper starts the writeback of what aria2 wrote
(keeper.write_behind), so the download does not sit in memory until aria2's fsync at its end.

How much of a file still waits in the page cache to be written is read with Linux's cachestat(2)
(6.5 and later; the test is skipped on older kernels): nr_dirty + nr_writeback pages of the partial
file, sampled while a throttled download runs. aria2's own control-file saves (each one an fsync of
the download, every second by default) are turned off here, so what keeps the file written is the
keeper alone; left to the kernel, none of it would be written for 30 s.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from support.aria2_helpers import sha256, wait_until
from support.pagecache import cachestat_works, unwritten

from colabmagic.services import aria2 as service
from colabmagic.system import probes


def test_a_download_is_on_disk_as_it_arrives(serve: Any, payloads: Any, dl_dir: Path, tmp_path: Path) -> None:
    if not cachestat_works(tmp_path):
        pytest.skip("needs cachestat(2) (Linux 6.5 or later) and a disk file system under the test folder")
    _, digest, size = payloads["big.bin"]
    rate = 3_000_000
    server = serve(rate=rate)  # 12 MB at 3 MB/s: about 4 s
    config = service.Aria2Config(download_dir=str(dl_dir), rpc_port=probes.free_port(),
                                 extra_options=(("auto-save-interval", "0"),))
    daemon = service.start(config)
    assert daemon.client.call("aria2.getGlobalOption", [])["auto-save-interval"] == "0"
    (d,) = daemon.add([server.url("big.bin")])
    target = dl_dir / "big.bin"
    wait_until(lambda: daemon.get(d.gid).completed >= 2 * rate, 30, "2 s of the download")

    samples: List[Tuple[int, int]] = []  # (bytes downloaded, bytes of them not yet on disk)
    while daemon.get(d.gid).status == "active" and daemon.get(d.gid).completed < size - rate:
        done = daemon.get(d.gid).completed
        left = unwritten(target)
        assert left is not None
        samples.append((done, left))
        time.sleep(0.1)
    assert len(samples) >= 5, f"too few samples while the download ran: {samples}"
    # Left to the kernel, everything downloaded so far would still be waiting (its 30 s expiry): a
    # median of about 9 MB here. Written behind every 0.25 s, about 0.4 s of it at most.
    waiting = statistics.median(left for _, left in samples)
    assert waiting < rate, f"{waiting} bytes downloaded but not yet on disk (samples: {samples})"

    wait_until(lambda: daemon.get(d.gid).status == "complete", 60, "the download to complete")
    assert sha256(str(target)) == digest

