"""aria2's own on-download-complete / on-download-error hooks become events: a webhook gets them, the next
cell shows them, and neither holds a secret (the refused download's URL carries a token in its query)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aria2_helpers import sha256
from webhook import CANARY_ENV, assert_no_canary, enable


def test_a_finished_and_a_failed_download_are_notified(aip: Any, serve: Any, payloads: Any, cm_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = enable(aip, monkeypatch)
    try:
        ok_server = serve()
        d = aip.cell(f"%aria2 add {ok_server.url('small.bin')} --out done.bin --wait").value
        _, digest, size = payloads["small.bin"]
        assert sha256(d.path) == digest
        done = receiver.wait_for("aria2_download_complete", timeout=60, name="done.bin")
        assert done is not None, "no aria2_download_complete notification"
        assert done["files"] == 1 and done["gid"] == d.gid and done["path"] == d.path
        assert os.path.getsize(d.path) == size

        refusing = serve(require_headers={"Cookie": "session=needed"})
        signed = refusing.url("small.bin") + f"?token={CANARY_ENV['HF_TOKEN']}"
        aip.cell(f"%aria2 add '{signed}' --out refused.bin", check=False)
        failed = receiver.wait_for("aria2_download_error", timeout=60)
        assert failed is not None, "no aria2_download_error notification"
        assert failed["name"] in ("refused.bin", "")
        shown = aip.cell("1").stdout + aip.cell("2").stdout
        assert "aria2 download failed" in shown or "aria2 download failed" in (cm_home / "events.jsonl").read_text()
        assert_no_canary(receiver, cm_home)
    finally:
        receiver.stop()
