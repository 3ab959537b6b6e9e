"""%aria2 over HTTP from a local server: checksums, returning at once, status, cookies, resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from support.aria2_helpers import sha256, wait_until

from colabmagic.services import aria2 as service


def test_add_wait_gives_the_right_file(aip: Any, serve: Any, payloads: Any, dl_dir: Any) -> None:
    server = serve()
    _, digest, size = payloads["small.bin"]
    c = aip.cell(f"%aria2 add {server.url('small.bin')} --wait")
    d = c.value
    assert d.status == "complete"
    assert d.path == str(dl_dir / "small.bin")
    assert os.path.getsize(d.path) == size
    assert sha256(d.path) == digest
    assert "100.0%" in c.stdout  # the progress bar reached the end


def test_add_returns_at_once_and_status_shows_progress(aip: Any, serve: Any) -> None:
    server = serve(rate=1_000_000)  # 12 MB at 1 MB/s: still running while we look
    aip.cell("%aria2 start")
    began = time.monotonic()
    c = aip.cell(f"%aria2 add {server.url('big.bin')}")
    elapsed = time.monotonic() - began
    assert elapsed < 2.0, f"add blocked the kernel for {elapsed:.1f}s"
    d = c.value
    assert d.status in ("active", "waiting")

    def moving() -> bool:
        table = aip.cell(f"%aria2 status {d.gid}").value
        row = table.rows[0]
        return row[2] == "active" and "  0.0%" not in row[3] and "100.0%" not in row[3]

    wait_until(moving, 60, "status to show partial progress")
    listing = str(aip.cell("%aria2 status").value)
    assert d.gid in listing and "big.bin" in listing

    watch = aip.cell("%aria2 status --watch").value
    try:
        assert watch.running
        assert aip.cell("21 * 2").value == 42  # other cells run while the table stays live
    finally:
        watch.stop()
    aip.cell(f"%aria2 remove {d.gid}")
    assert service.current().pending() == []


def test_cookie_header(aip: Any, serve: Any, payloads: Any, dl_dir: Any) -> None:
    server = serve(require_headers={"Cookie": "session=s3cret-cookie"})
    _, digest, _ = payloads["small.bin"]
    url = server.url("small.bin")
    refused = aip.cell(f"%aria2 add {url} --out nocookie.bin --wait", check=False)
    assert isinstance(refused.error, service.DownloadError)
    assert "failed" in str(refused.error)
    assert not (dl_dir / "nocookie.bin").exists()
    ok = aip.cell(f'%aria2 add {url} --out withcookie.bin --header "Cookie: session=s3cret-cookie" --wait')
    assert sha256(ok.value.path) == digest
    assert any(r.status == 200 and "s3cret-cookie" in r.headers.get("Cookie", "") for r in server.requests)


def test_sigkill_resumes_from_where_it_was(aip: Any, serve: Any, payloads: Any) -> None:
    server = serve(rate=1_500_000)
    _, digest, size = payloads["big.bin"]
    d = aip.cell(f"%aria2 add {server.url('big.bin')}").value
    daemon = service.current()
    wait_until(lambda: daemon.get(d.gid).completed > 3_000_000, 60, "3 MB downloaded")
    old_pid = daemon.pid
    assert old_pid is not None
    requests_before = len(server.requests)
    os.kill(old_pid, signal.SIGKILL)

    # The next magic finds the daemon back (restarted by its keeper) with the download in its queue.
    table = aip.cell(f"%aria2 status {d.gid}").value
    assert table.rows[0][0] == d.gid
    daemon = service.current()
    assert daemon.pid != old_pid
    done = daemon.wait([daemon.get(d.gid)], timeout=120)[0]
    assert sha256(done.path) == digest and os.path.getsize(done.path) == size
    resumed = [r for r in server.requests[requests_before:] if r.range_start]
    assert resumed, f"no Range request after the kill: {server.requests[requests_before:]}"
    assert max(r.range_start or 0 for r in resumed) > 1_000_000


def test_queue_survives_stop_and_a_new_kernel(aip: Any, serve: Any, payloads: Any, cm_home: Any) -> None:
    server = serve(rate=500_000)
    d = aip.cell(f"%aria2 add {server.url('big.bin')}").value
    aip.cell(f"%aria2 pause {d.gid}")
    aip.cell("%aria2 stop")
    assert service.current() is None
    # A fresh namespace, as after a kernel restart: the queue comes back from the session file.
    aip.cell("%reset -f")
    table = aip.cell("%aria2 status").value
    rows = {row[0]: row for row in table.rows}
    assert d.gid in rows and rows[d.gid][2] == "paused"
    # Another process (a new kernel) adopts the running daemon and sees the same queue.
    code = (
        "from colabmagic.services import aria2; d = aria2.current(); "
        "print(d.pid, [x.gid for x in d.pending()])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=60, check=True).stdout
    assert d.gid in out and str(service.current().pid) in out
    aip.cell(f"%aria2 resume {d.gid}")
    wait_until(lambda: service.current().get(d.gid).status == "active", 30, "the download to resume")
    aip.cell("%aria2 remove --all")
    assert service.current().downloads() == []


def test_metalink_file(aip: Any, serve: Any, payloads: Any, dl_dir: Any, tmp_path: Any) -> None:
    server = serve()
    _, digest, size = payloads["small.bin"]
    meta = tmp_path / "files.meta4"
    meta.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<metalink xmlns="urn:ietf:params:xml:ns:metalink">\n'
        f'  <file name="from-metalink.bin"><size>{size}</size>'
        f'<hash type="sha-256">{digest}</hash>'
        f'<url>{server.url("small.bin")}</url></file>\n</metalink>\n'
    )
    d = aip.cell(f"%aria2 add {meta} --wait").value
    assert d.path == str(dl_dir / "from-metalink.bin")
    assert sha256(d.path) == digest
