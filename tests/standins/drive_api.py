"""A loopback stand-in for the Google Drive v3 ``files`` listing and Google's OAuth token endpoint.

It serves ``GET /drive/v3/files?q='<folderId>' in parents and trashed = false``
(with ``pageSize``/``pageToken`` paging and the real field names: ``id``,
``name``, ``mimeType``, ``md5Checksum``, ``size`` as a string,
``modifiedTime``) over a local folder that plays "My Drive" (id ``root``),
and ``POST /token`` answering a refresh-token grant the way
oauth2.googleapis.com does (``credentials()`` gives google-auth credentials using it). A listing without the issued bearer token gets
401, as the real API does.

Follows: the Drive API v3 REST reference for ``files.list``
(developers.google.com/drive/api/reference/rest/v3/files/list: ``q``,
``pageSize``, ``pageToken``/``nextPageToken``, ``md5Checksum``, ``size`` as a
string) and its error guide (developers.google.com/drive/api/guides/handle-errors:
401 "Request had invalid authentication credentials.", 400 "Invalid Value",
404 "Not Found", each as ``{"error": {"code", "message"}}``); the token
endpoint as google-auth 2.63.1's ``google/oauth2/_client.py`` reads it
(``access_token``/``expires_in``, and ``{"error": "invalid_grant"}`` on a bad
refresh token, which google-auth raises as RefreshError).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

FOLDER = "application/vnd.google-apps.folder"
PARENT_QUERY = re.compile(r"^'(?P<parent>(?:[^'\\]|\\.)*)' in parents and trashed = false$")


def _file_id(rel: str) -> str:
    return base64.urlsafe_b64encode(rel.encode()).decode().rstrip("=") or "root"


def _rel(file_id: str) -> str:
    if file_id == "root":
        return ""
    pad = "=" * (-len(file_id) % 4)
    return base64.urlsafe_b64decode(file_id + pad).decode()


class DriveApiStandIn:
    """Start with ``DriveApiStandIn(folder).start()``; ``.root`` is the API root URL."""

    def __init__(self, folder: str, refresh_token: str = "refresh-me", page_size_max: int = 2):
        self.folder = folder
        self.refresh_token = refresh_token
        self.access_token = secrets.token_urlsafe(16)
        self.page_size_max = page_size_max  # small, so paging is exercised
        self.listings: List[str] = []
        self.refused = 0
        self.tokens_issued = 0
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def root(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> DriveApiStandIn:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                if self.path != "/token" or form.get("grant_type") != ["refresh_token"] \
                        or form.get("refresh_token") != [api.refresh_token]:
                    self._send(400, {"error": "invalid_grant"})
                    return
                api.tokens_issued += 1
                self._send(200, {"access_token": api.access_token, "expires_in": 3599, "token_type": "Bearer"})

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlparse(self.path)
                if url.path != "/drive/v3/files":
                    self._send(404, {"error": {"code": 404, "message": "Not Found"}})
                    return
                if self.headers.get("Authorization") != f"Bearer {api.access_token}":
                    api.refused += 1
                    self._send(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials."}})
                    return
                params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                match = PARENT_QUERY.match(params.get("q", ""))
                if not match:
                    self._send(400, {"error": {"code": 400, "message": "Invalid Value"}})
                    return
                parent = match.group("parent").replace("\\'", "'").replace("\\\\", "\\")
                api.listings.append(parent)
                self._send(200, api.list_children(parent, params))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def list_children(self, parent: str, params: Dict[str, str]) -> Dict[str, Any]:
        folder = os.path.join(self.folder, _rel(parent))
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return {"files": []}
        items = []
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), self.folder)
            full = os.path.join(self.folder, rel)
            mtime = datetime.fromtimestamp(os.path.getmtime(full), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            item: Dict[str, Any] = {"id": _file_id(rel), "name": name, "modifiedTime": mtime}
            if os.path.isdir(full):
                item["mimeType"] = FOLDER
            else:
                with open(full, "rb") as fh:
                    item["md5Checksum"] = hashlib.md5(fh.read()).hexdigest()
                item["mimeType"] = "application/octet-stream"
                item["size"] = str(os.path.getsize(full))
            items.append(item)
        size = min(int(params.get("pageSize", 100)), self.page_size_max)
        start = int(params.get("pageToken", "0"))
        page: Dict[str, Any] = {"kind": "drive#fileList", "files": items[start:start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    def credentials(self) -> Any:
        """User credentials as google.auth.default() returns them after Colab's authenticate_user():
        no access token yet, a refresh token, and a token endpoint (here, this stand-in's)."""
        from google.oauth2.credentials import Credentials

        return Credentials(token=None, refresh_token=self.refresh_token, token_uri=f"{self.root}/token",
                           client_id="standin.apps.googleusercontent.com", client_secret="standin-secret")
