"""Plumbing shared by the provider stand-ins: a loopback "edge" that really carries traffic.

A stand-in (frps/frpc, cloudflared, ngrok) opens its "public" side as a
listener on 127.0.0.1 that forwards TCP to the exposed local port, with TLS
where the real service terminates TLS (a self-signed certificate made once
with openssl). Public host names such as ``xyz.trycloudflare.com`` cannot be
resolved here, so the stand-in writes each advertised ``host:port`` and the
loopback port that serves it into a small registry folder
(``$COLABMAGIC_STANDIN_EDGE_DIR``): the test's stand-in for DNS, read by ``resolve``.
Only the standard library is used, so the stand-ins run under any python3.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

EDGE_ENV = "COLABMAGIC_STANDIN_EDGE_DIR"  # COLABMAGIC_*: passed on to the agents colabmagic starts


def edge_dir() -> Path:
    path = Path(os.environ.get(EDGE_ENV) or Path(tempfile.gettempdir()) / "colabmagic-standin-edge")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(authority: str) -> Path:
    return edge_dir() / ("host_" + authority.replace("/", "_").replace(":", "_port_"))


def register(authority: str, port: int) -> None:
    """Advertise that ``authority`` ("host:port") is served by 127.0.0.1:``port``."""
    path = _key(authority)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"host": "127.0.0.1", "port": port, "pid": os.getpid()}))
    os.replace(tmp, path)


def unregister(authority: str) -> None:
    """Withdraw this process's own registration of ``authority``, and only that.

    A named tunnel (cloudflared) or a reserved address (ngrok) can have a newer connector by the time
    an old one shuts down (a new runtime started while the old agent was still stopping): the real
    edges drop only the stopping connector's connections and keep routing to the newer one, so a
    registration written since by another process is left alone.
    """
    path = _key(authority)
    try:
        if json.loads(path.read_text()).get("pid") != os.getpid():
            return
        path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def resolve(authority: str) -> Tuple[str, int]:
    """The loopback address serving ``authority``, as registered by a live stand-in."""
    data = json.loads(_key(authority).read_text())
    return str(data["host"]), int(data["port"])


def named_tunnel(hostname: str, account: str = "0123456789abcdef0123456789abcdef") -> str:
    """Create a named tunnel routed to ``hostname`` in the stand-in "Cloudflare account"; its token.

    What the user does once in the Zero Trust dashboard (create a tunnel, add a public
    hostname for it). The token has real cloudflared's format: standard base64 of JSON
    ``{"a": account tag, "t": tunnel UUID, "s": base64 tunnel secret}``
    (cloudflared connection/connection.go ``TunnelToken``, 2026.8.2).
    """
    import base64
    import secrets as _secrets
    import uuid

    tunnel = str(uuid.uuid4())
    secret = base64.b64encode(_secrets.token_bytes(32)).decode()
    record = edge_dir() / f"cf_tunnel_{tunnel}.json"
    record.write_text(json.dumps({"account": account, "secret": secret, "hostname": hostname}))
    return base64.b64encode(json.dumps({"a": account, "t": tunnel, "s": secret}).encode()).decode()


def named_tunnel_record(tunnel_id: str) -> Optional[Dict[str, str]]:
    try:
        return json.loads((edge_dir() / f"cf_tunnel_{tunnel_id}.json").read_text())
    except (OSError, ValueError):
        return None


def ngrok_reserve(address: str) -> None:
    """Reserve a domain or TCP address (``1.tcp.ngrok.io:21234``) in the stand-in ngrok account."""
    path = edge_dir() / "ngrok_reserved.json"
    found = ngrok_reserved()
    path.write_text(json.dumps(sorted(set(found) | {address})))


def ngrok_reserved() -> list:
    try:
        return list(json.loads((edge_dir() / "ngrok_reserved.json").read_text()))
    except (OSError, ValueError):
        return []


def certificate() -> str:
    """A self-signed certificate with its key in one PEM file, made once per edge folder with openssl.

    One file, replaced atomically, so stand-ins starting together never pair one's key with
    another's certificate.
    """
    pem = edge_dir() / "edge.pem"
    if not pem.exists():
        tmp = Path(tempfile.mkdtemp(dir=edge_dir()))
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=standin-edge", "-keyout", str(tmp / "k.pem"), "-out", str(tmp / "c.pem")],
            check=True, capture_output=True,
        )
        (tmp / "both.pem").write_bytes((tmp / "k.pem").read_bytes() + (tmp / "c.pem").read_bytes())
        os.replace(tmp / "both.pem", pem)
    return str(pem)


def server_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certificate())
    # No TLS 1.3 session tickets: they arrive after the handshake and are read by the client's first
    # recv, while its other thread may already be writing (pipe and access_ssh pump each direction in
    # a thread of its own, over one SSL object). OpenSSL does not allow one SSL object to be used from
    # two threads at once; with tickets that race now and then closed a login before it reached sshd
    # ("Connection closed by UNKNOWN port 65535", about 1 run in 15). The stand-ins resume nothing.
    ctx.num_tickets = 0
    return ctx


def client_tls() -> ssl.SSLContext:
    """What a client of the stand-in edge uses: the edge's certificate is self-signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes; closes both."""
    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    t = threading.Thread(target=one_way, args=(b, a), daemon=True)
    t.start()
    one_way(a, b)
    t.join(timeout=30)
    for s in (a, b):
        try:
            s.close()
        except OSError:
            pass


def close_listener(sock: socket.socket) -> None:
    """Close a listener for good: shutdown first wakes the thread blocked in accept() (Linux)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def listen(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


def serve(sock: socket.socket, handle: Callable[[socket.socket], None], tls: Optional[ssl.SSLContext] = None) -> None:
    """Accept connections on ``sock`` in a thread; each is handled in its own thread."""
    def accept_loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return

            def run(c: socket.socket = conn) -> None:
                try:
                    if tls is not None:
                        c.settimeout(10)
                        c = tls.wrap_socket(c, server_side=True)
                        c.settimeout(None)
                    handle(c)
                except (OSError, ssl.SSLError):
                    try:
                        c.close()
                    except OSError:
                        pass

            threading.Thread(target=run, daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()


def forward_to(port: int, host: str = "127.0.0.1") -> Callable[[socket.socket], None]:
    """A handler that connects to host:port and pipes the public connection to it."""
    def handle(conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection((host, port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            conn.close()
            return
        pipe(conn, upstream)

    return handle


Route = Callable[[BaseHTTPRequestHandler, str, bytes], Tuple[int, object]]


def json_api(host: str, port: int, routes: Dict[str, Route],
             auth: Optional[Callable[[BaseHTTPRequestHandler], bool]] = None) -> ThreadingHTTPServer:
    """A small JSON HTTP API; ``routes`` maps "METHOD /path-prefix" to a handler giving (status, body)."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def _dispatch(self, method: str) -> None:
            if auth is not None and not auth(self):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="Restricted"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            best = ""
            for key in routes:
                m, _, prefix = key.partition(" ")
                if m == method and (path == prefix or (prefix.endswith("/") and path.startswith(prefix))):
                    if len(prefix) > len(best.partition(" ")[2]):
                        best = key
            if not best:
                status, payload = 404, {"error": "not found"}
            else:
                status, payload = routes[best](self, path, body)
            if isinstance(payload, (bytes, str)):
                raw = payload.encode() if isinstance(payload, str) else payload
                ctype = "text/plain; charset=utf-8"
            else:
                raw = json.dumps(payload).encode() if payload is not None else b""
                ctype = "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_forever(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(0.2)


def out(line: str, stream: object = None) -> None:
    target = stream if stream is not None else sys.stdout
    print(line, file=target, flush=True)  # type: ignore[call-overload]
