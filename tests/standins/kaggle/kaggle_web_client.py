"""Stand-in for Kaggle's ``kaggle_web_client`` (what ``kaggle_secrets`` uses to reach Kaggle).

Follows Kaggle/docker-python patches/kaggle_web_client.py at commit 78aaa43
(2026-08-12). ``KaggleWebClient()`` needs the kernel's token in
KAGGLE_USER_SECRETS_TOKEN (else CredentialError) and talks to
KAGGLE_URL_BASE (default https://www.kaggle.com); ``make_post_request``
POSTs JSON with a 40 s timeout and returns the answer's ``result``, or
raises BackendError("Unexpected response from the service. Response: ...")
when ``wasSuccessful`` is false. Network failures become ConnectionError;
because HTTPError is a URLError, an HTTP 401/403 also comes out as
ConnectionError("Connection error trying to communicate with service.") in
the real client (its CredentialError branch after it is never reached), and
so it does here. In the tests KAGGLE_URL_BASE points at a loopback stand-in
of Kaggle's service (tests/standins/kaggle/kaggle_service.py).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from urllib.error import URLError

_KAGGLE_DEFAULT_URL_BASE = "https://www.kaggle.com"
_KAGGLE_URL_BASE_ENV_VAR_NAME = "KAGGLE_URL_BASE"
_KAGGLE_USER_SECRETS_TOKEN_ENV_VAR_NAME = "KAGGLE_USER_SECRETS_TOKEN"
TIMEOUT_SECS = 40


class CredentialError(Exception):
    pass


class BackendError(Exception):
    pass


class KaggleWebClient:
    def __init__(self):
        self.url_base = os.getenv(_KAGGLE_URL_BASE_ENV_VAR_NAME) or _KAGGLE_DEFAULT_URL_BASE
        token = os.getenv(_KAGGLE_USER_SECRETS_TOKEN_ENV_VAR_NAME)
        if token is None:
            raise CredentialError(
                "A JWT Token is required to call Kaggle, "
                f"but none found in environment variable {_KAGGLE_USER_SECRETS_TOKEN_ENV_VAR_NAME}"
            )
        self.headers = {"Content-type": "application/json", "X-Kaggle-Authorization": f"Bearer {token}"}

    def make_post_request(self, data, endpoint, timeout=TIMEOUT_SECS):
        body = json.dumps(dict(data)).encode("utf-8")
        request = urllib.request.Request(f"{self.url_base}{endpoint}", headers=self.headers, data=body)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read())
        except (URLError, socket.timeout) as err:  # HTTPError included, as in the real client
            if isinstance(err, socket.timeout) or isinstance(getattr(err, "reason", None), socket.timeout):
                raise ConnectionError(
                    "Timeout error trying to communicate with service. Please ensure internet is on."
                ) from err
            raise ConnectionError("Connection error trying to communicate with service.") from err
        if not answer.get("wasSuccessful") or "result" not in answer:
            raise BackendError(f"Unexpected response from the service. Response: {answer}.")
        return answer["result"]
