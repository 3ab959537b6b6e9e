"""``--wait`` and ``status --watch`` wake on aria2's own WebSocket notifications, not on a poll timer.

Each wait below is given a poll interval of an hour: it can only return in
time if aria2's ``aria2.onDownloadComplete`` / ``onDownloadError`` event woke it.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, List

from support.aria2_helpers import sha256

from colabmagic.services import aria2 as service
from colabmagic.services.aria2.daemon import Notifications
from colabmagic.system import probes

HOUR = 3600.0


def _wait_in_thread(daemon: Any, downloads: List[Any]) -> Dict[str, Any]:
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = daemon.wait(downloads, interval=HOUR, timeout=2 * HOUR)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(90)  # the download itself takes about 2 s; only a missed event makes this run out
    outcome["returned"] = not thread.is_alive()
    return outcome


def test_wait_returns_when_aria2_says_complete(aip: Any, serve: Any, payloads: Any) -> None:
    server = serve(rate=3_000_000)  # 6 MB: about 2 s, so the wait is asleep when it ends
    _, digest, size = payloads["small.bin"]
    d = aip.cell(f"%aria2 add {server.url('small.bin')} --out event.bin").value
    daemon = service.current()
    with daemon.notifications() as events:
        assert events.connected, "aria2's WebSocket RPC did not accept a connection"
    outcome = _wait_in_thread(daemon, [d])
    assert outcome["returned"], "wait() slept through aria2's onDownloadComplete"
    assert "error" not in outcome, outcome.get("error")
    done = outcome["value"][0]
    assert done.status == "complete"
    assert os.path.getsize(done.path) == size and sha256(done.path) == digest


def test_wait_raises_when_aria2_says_error(aip: Any, serve: Any) -> None:
    server = serve(require_headers={"Cookie": "session=needed"})  # refuses a request without it
    d = aip.cell(f"%aria2 add {server.url('small.bin')} --out refused.bin").value
    outcome = _wait_in_thread(service.current(), [d])
    assert outcome["returned"], "wait() slept through aria2's onDownloadError"
    assert isinstance(outcome.get("error"), service.DownloadError)


def test_events_name_the_download(aip: Any, serve: Any) -> None:
    server = serve(rate=3_000_000)
    daemon = service.ensure(aip.magics_manager.registry["Aria2Magics"].settings())
    with daemon.notifications() as events:
        d = daemon.add([server.url("small.bin")], out="named.bin")[0]
        seen: List[Any] = []
        end_events = {"aria2.onDownloadComplete", "aria2.onDownloadError"}
        for _ in range(60):
            seen += events.wait(1.0)
            if any(name in end_events for name, _gid in seen):
                break
    assert ("aria2.onDownloadComplete", d.gid) in seen, seen


def test_without_a_websocket_the_wait_falls_back_to_the_timer() -> None:
    events = Notifications(probes.free_port(), connect_timeout=2)
    assert not events.connected
    assert events.wait(0.05) == []  # sleeps instead of failing
    events.close()
