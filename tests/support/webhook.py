"""A loopback webhook receiver (a tiny http.server in a thread), and canary secrets to look for.

It records every POST (path, headers, body) and answers 200, like an ntfy
server or a generic webhook endpoint; ``wait_for(event)`` waits for one kind.
The canaries are set where a user's credentials live (the environment and
colabmagic's secret store), so a test can assert none of them ever appears
in a payload or in events.jsonl.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional

CANARY_ENV = {
    "FRP_TOKEN": "canary-frp-7f3a9c1e",
    "NGROK_AUTHTOKEN": "canary-ngrok-2b8d4e6f",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-9e1c5a7b",
    "HF_TOKEN": "canary-hf-4d2f8b3a",
}
CANARY_STORED = {"RELAY_PASSWORD": "canary-stored-6a1b9d2c"}
CANARIES = list(CANARY_ENV.values()) + list(CANARY_STORED.values())


class Receiver:
    def __init__(self, status: int = 200):
        self.posts: List[Dict[str, Any]] = []
        self.status = status
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        # An ntfy-style topic URL: the topic is the secret part.
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/colabmagic-topic-5c0e1d"

    def events(self) -> List[Dict[str, Any]]:
        with self.lock:
            return [json.loads(p["body"]) for p in self.posts]

    def wait_for(self, kind: str, timeout: float = 60.0, **match: Any) -> Optional[Dict[str, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for event in self.events():
                if event.get("event") == kind and all(event.get(k) == v for k, v in match.items()):
                    return event
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def assert_no_canary(receiver: Receiver, home: Path) -> None:
    """No canary secret, and not the webhook URL's secret topic, in any payload, header or events.jsonl."""
    topic = receiver.url.rsplit("/", 1)[1]
    texts = [p["body"].decode() + json.dumps(p["headers"]) for p in receiver.posts]
    events = home / "events.jsonl"
    if events.exists():
        texts.append(events.read_text())
    for text in texts:
        for canary in CANARIES + [topic]:
            assert canary not in text, f"a secret ({canary[:12]}...) is in a notification: {text[:300]}"


def plant(monkeypatch: Any) -> Receiver:
    """Canaries in place and a receiver listening, its URL in COLABMAGIC_NOTIFY_URL (the caller stops it)."""
    from colabmagic.system import secrets

    receiver = Receiver()
    for name, value in CANARY_ENV.items():
        monkeypatch.setenv(name, value)
    for name, value in CANARY_STORED.items():
        secrets.store(name, value)
    monkeypatch.setenv("COLABMAGIC_NOTIFY_URL", receiver.url)
    return receiver


def enable(ip: Any, monkeypatch: Any) -> Receiver:
    """``plant``, then ``%config ColabMagicsBase.notify = 'on'`` (the caller stops the receiver)."""
    receiver = plant(monkeypatch)
    ip.cell("%config ColabMagicsBase.notify = 'on'")
    return receiver
