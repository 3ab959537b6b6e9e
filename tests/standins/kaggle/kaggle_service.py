"""A loopback stand-in of Kaggle's UserSecrets service, for the ``kaggle_secrets`` stand-in.

Answers POST /requests/GetUserSecretByLabelRequest as the real service's
answers are read by Kaggle/docker-python's client (patches/kaggle_web_client.py,
tests/test_user_secrets.py at commit 78aaa43): ``{"wasSuccessful": true,
"result": {"secret": ...}}`` for a label attached to the notebook,
``{"wasSuccessful": false, "errors": [...]}`` otherwise, and HTTP 401 for a
request without the kernel's token. ``requests`` records the labels asked for.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List


class KaggleSecretsService:
    def __init__(self, secrets: Dict[str, str], token: str):
        self.secrets = dict(secrets)
        self.token = token
        self.requests: List[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                if self.headers.get("X-Kaggle-Authorization") != f"Bearer {service.token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                if self.path != "/requests/GetUserSecretByLabelRequest":
                    self.send_response(404)
                    self.end_headers()
                    return
                label = str(body.get("Label", ""))
                service.requests.append(label)
                if label in service.secrets:
                    answer = {"wasSuccessful": True, "result": {"secret": service.secrets[label],
                                                                  "secretType": "secret"}}
                else:
                    answer = {"wasSuccessful": False, "errors": ["No user secrets exist for kernel"]}
                raw = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> KaggleSecretsService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
