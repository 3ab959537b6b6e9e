"""Notifications: the setting, the events a loopback webhook receives, and no secret in any of them.

Canary secrets sit where a user's credentials live (FRP_TOKEN, NGROK_AUTHTOKEN
and others in the kernel's environment, one in colabmagic's secret store);
the webhook URL itself is a secret (an ntfy topic). None may appear in a
payload, its headers, or events.jsonl.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from support.webhook import CANARY_ENV, CANARY_STORED, Receiver, assert_no_canary, plant

from colabmagic.system import daemon_environment, notify, supervisor


@pytest.fixture
def receiver(ip: Any, cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = plant(monkeypatch)
    yield r
    r.stop()


def test_the_setting_takes_a_secret_never_the_url(ip: Any, receiver: Receiver,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    bad = ip.cell(f"%config ColabMagicsBase.notify = {receiver.url!r}")  # %config logs the error
    said = caplog.text + bad.output
    assert said.count("NAME of a secret") == 1, said
    assert receiver.url not in said, "the URL was echoed"
    assert notify.notify_url() is None
    on = ip.cell("%config ColabMagicsBase.notify = 'on'")
    assert "notifications on" in on.stdout and receiver.url not in on.output
    stored = Path(os.environ["COLABMAGIC_HOME"]) / "secrets" / notify.URL_SECRET
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    # Another secret's name works too; a name with no secret behind it says so, without a value.
    os.environ["MY_HOOK"] = "not a url"
    caplog.clear()
    wrong = ip.cell("%config ColabMagicsBase.notify = 'MY_HOOK'")
    said = caplog.text + wrong.output
    assert "does not hold an http(s) URL" in said and "not a url" not in said
    off = ip.cell("%config ColabMagicsBase.notify = 'off'")
    assert "notifications off" in off.stdout and notify.notify_url() is None


def test_a_daemon_that_keeps_dying_gives_up_and_says_so(ip: Any, receiver: Receiver, cm_home: Path) -> None:
    ip.cell("%config ColabMagicsBase.notify = 'on'")
    spec = supervisor.ServiceSpec(name="crasher", argv=[sys.executable, "-c", "import sys; sys.exit(3)"],
                                  backoff_max=0.2)
    supervisor.launch(spec)
    event = receiver.wait_for("service_gave_up", timeout=90, service="crasher")
    assert event is not None, "no service_gave_up notification"
    assert event["restarts"] == 10 and event["last_exit"] == 3 and event["window"] == 120
    post = receiver.posts[-1]
    assert post["path"] == "/colabmagic-topic-5c0e1d"  # the topic URL as it is, ntfy style
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["Title"].startswith("colabmagic: crasher stopped restarting")
    status = ip.cell("%colabmagic status").stdout
    assert "crasher" in status and "gave-up" in status
    # The next cell's output shows it once (the keeper wrote it to events.jsonl).
    assert "colabmagic: crasher stopped restarting after 10 restarts" in status
    assert "stopped restarting" not in ip.cell("1 + 1").stdout
    events = cm_home / "events.jsonl"
    assert stat.S_IMODE(events.stat().st_mode) == 0o600
    # Started again, it is a fresh service, not the one that gave up.
    svc = supervisor.adopt("crasher")
    assert svc is not None and svc.status == "gave-up"
    svc.stop()
    assert_no_canary(receiver, cm_home)


def test_a_secret_in_an_event_field_is_masked(ip: Any, receiver: Receiver, cm_home: Path) -> None:
    """An error message or a download URL may carry a token (a failing command line, a signed URL)."""
    ip.cell("%config ColabMagicsBase.notify = 'on'")
    token = CANARY_ENV["FRP_TOKEN"]
    notify.emit("aria2_download_error", gid="abc", name="model.bin",
                error=f"frpc exited: invalid token {token}",
                url=f"https://user:{CANARY_STORED['RELAY_PASSWORD']}@example.org/model.bin?sig={token}")
    event = receiver.wait_for("aria2_download_error", timeout=30)
    assert event is not None
    assert event["error"] == f"frpc exited: invalid token {notify.MASK}"
    assert event["url"] == "https://example.org/model.bin"
    assert_no_canary(receiver, cm_home)


def test_a_broken_webhook_never_reaches_the_cell(ip: Any, receiver: Receiver, cm_home: Path) -> None:
    receiver.status = 500
    ip.cell("%config ColabMagicsBase.notify = 'on'")
    c = ip.cell("from colabmagic.system import notify as _n\n_n.emit('service_gave_up', service='x', restarts=11, "
                "window=120.0)\n'still fine'")
    assert c.error is None and c.value == "still fine"
    assert receiver.wait_for("service_gave_up", timeout=30) is not None
    receiver.stop()  # now nothing listens at all
    notify.post(receiver.url, {"event": "probe"}, timeout=2)
    log = (cm_home / "logs" / "notify.log").read_text()
    assert "HTTP 500" in log and "not delivered" in log
    assert receiver.url.rsplit("/", 1)[1] not in log


def test_offline_mode_contacts_only_a_loopback_webhook(cm_home: Path) -> None:
    assert not notify.post("http://192.0.2.1/topic", {"event": "probe"})  # TEST-NET-1: must not be tried
    assert "offline mode" in (cm_home / "logs" / "notify.log").read_text()


def test_the_secret_pattern_is_the_daemon_environment_one() -> None:
    assert notify.SECRET_LIKE.pattern == daemon_environment.SECRET_LIKE.pattern
    assert notify.OWN_MARKERS == daemon_environment.OWN_MARKERS
