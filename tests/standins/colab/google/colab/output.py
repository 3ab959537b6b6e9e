"""Stand-in for ``google.colab.output``: ``eval_js`` answering Colab's ``proxyPort`` call.

In hosted Colab, ``eval_js("google.colab.kernel.proxyPort(PORT)")`` runs in
the user's browser and returns an https URL on Colab's proxy that reaches
PORT on the VM. Here a TLS listener on 127.0.0.1 plays Colab's proxy: it
forwards to PORT and is registered under the returned host name in the
stand-ins' DNS folder (see tests/standins/_edge.py). Any other script is
refused, as this stand-in cannot run JavaScript.

The waiting follows colabtools google/colab/output/_js.py and _message.py
(commit 3c07d77, 2026-04): ``eval_js(script, ignore_result=False,
timeout_sec=None)`` sends the script to the browser and waits for its reply
with ``read_reply_from_input(request_id, timeout_sec)``: without
``timeout_sec`` for ever, with it None when no reply came; a reply carrying
an error raises ``MessageError``. ``COLABMAGIC_STANDIN_EVAL_JS`` picks the
browser's behaviour: ``answer`` (default), ``no-answer`` (the notebook is
not open in a browser, or its output frame is gone) or ``error``. ``calls``
records each script and ``timeouts`` each ``timeout_sec`` given.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))))

import _edge  # noqa: E402

PROXY_PORT = re.compile(r"^\s*google\.colab\.kernel\.proxyPort\(\s*(\d+)\s*(?:,\s*\{[^}]*\})?\s*\)\s*;?\s*$")
_proxies: Dict[int, str] = {}
calls: list = []


timeouts: list = []


def eval_js(script: str, ignore_result: bool = False, timeout_sec: Any = None) -> Any:
    calls.append(script)
    timeouts.append(timeout_sec)
    behaviour = os.environ.get("COLABMAGIC_STANDIN_EVAL_JS", "answer")
    if ignore_result:
        return None
    if behaviour == "no-answer":
        from google.colab import _message

        return _message.no_reply(timeout_sec)
    if behaviour == "error":
        from google.colab import _message

        raise _message.MessageError({"name": "TypeError", "message": "Cannot read properties of undefined (reading 'kernel')"})
    match = PROXY_PORT.match(script)
    if not match:
        raise NotImplementedError(f"the google.colab stand-in cannot evaluate {script!r}")
    port = int(match.group(1))
    if port not in _proxies:
        host = f"{secrets.token_hex(6)}-{port}-colab.googleusercontent.com"
        listener = _edge.listen()
        _edge.serve(listener, _edge.forward_to(port), tls=_edge.server_tls())
        _edge.register(f"{host}:443", listener.getsockname()[1])
        _proxies[port] = f"https://{host}/"
    return None if ignore_result else _proxies[port]
