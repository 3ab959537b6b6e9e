"""A local HTTP file server for demos and tests: Range requests, optional throttling and required headers.

``FileServer(root).start()`` serves the files in ``root`` on 127.0.0.1 at a
free port, answers ``Range: bytes=A-B`` with 206, can throttle each
response to ``rate`` bytes per second (so a download is still running when
you look at it), can demand request headers (a cookie, say) and answers 403
without them, and records every request (path, Range header, status) in
``requests``. ``stop()`` ends it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Request:
    path: str
    range: Optional[str]
    status: int
    headers: Dict[str, str]

    @property
    def range_start(self) -> Optional[int]:
        m = RANGE.match(self.range or "")
        return int(m.group(1)) if m and m.group(1) else None


class FileServer:
    """Serve ``root`` over HTTP on loopback (see the module docstring)."""

    def __init__(self, root: str, host: str = "127.0.0.1", port: int = 0, rate: Optional[int] = None,
                 require_headers: Optional[Dict[str, str]] = None):
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self.rate = rate
        self.require_headers = dict(require_headers or {})
        self.requests: List[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/{name}"

    def start(self) -> FileServer:
        server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="colabmagic-fileserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _handler(server: FileServer) -> Any:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _resolve(self) -> Optional[Path]:
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            target = (server.root / rel).resolve()
            if target != server.root and server.root not in target.parents:
                return None
            return target if target.is_file() else None

        def _finish(self, status: int, body: bytes = b"", headers: Tuple[Tuple[str, str], ...] = ()) -> None:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            seen = {k: v for k, v in self.headers.items()}
            for name, value in server.require_headers.items():
                if value not in (self.headers.get(name) or ""):
                    server._record(Request(self.path, rng, 403, seen))
                    self._finish(403, b"forbidden: missing header\n")
                    return
            target = self._resolve()
            if target is None:
                server._record(Request(self.path, rng, 404, seen))
                self._finish(404, b"not found\n")
                return
            size = target.stat().st_size
            start, end, status = 0, size - 1, 200
            if rng:
                m = RANGE.match(rng.strip())
                if not m or (not m.group(1) and not m.group(2)):
                    server._record(Request(self.path, rng, 416, seen))
                    self._finish(416, headers=(("Content-Range", f"bytes */{size}"),))
                    return
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                if start >= size or start > end:
                    server._record(Request(self.path, rng, 416, seen))
                    self._finish(416, headers=(("Content-Range", f"bytes */{size}"),))
                    return
                status = 206
            server._record(Request(self.path, rng, status, seen))
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Last-Modified", self.date_time_string(int(target.stat().st_mtime)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if self.command == "HEAD":
                return
            self._send_body(target, start, end - start + 1)

        def _send_body(self, target: Path, start: int, length: int) -> None:
            chunk = 64 * 1024
            if server.rate:
                chunk = max(1024, min(chunk, server.rate // 10))
            began = time.monotonic()
            sent = 0
            with open(target, "rb") as fh:
                fh.seek(start)
                while sent < length and not server._stopping.is_set():
                    data = fh.read(min(chunk, length - sent))
                    if not data:
                        break
                    try:
                        self.wfile.write(data)
                    except OSError:
                        return
                    sent += len(data)
                    if server.rate:
                        ahead = sent / server.rate - (time.monotonic() - began)
                        if ahead > 0:
                            server._stopping.wait(ahead)

    return Handler


def make_file(path: str, size: int, seed: int = 0) -> str:
    """Write ``size`` pseudo-random bytes to ``path`` (fast, reproducible) and return its sha256."""
    import hashlib
    import random

    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, 1 << 20)
            block = rng.randbytes(n) if hasattr(rng, "randbytes") else os.urandom(n)
            fh.write(block)
            digest.update(block)
            left -= n
    return digest.hexdigest()
