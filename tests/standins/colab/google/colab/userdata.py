"""Stand-in for hosted Colab's ``google.colab.userdata`` (the Secrets panel).

Follows colabtools google/colab/userdata.py at commit 3c07d77 (2026-04):
``get(key)`` refuses an empty key or one with whitespace (ValueError), asks
the browser with ``blocking_request('GetSecret', ..., timeout_sec=10)``, and
raises
  - ``TimeoutException`` when no answer came in 10 s (the notebook is not
    running in Colab's UI: an export, a scheduled run),
  - ``SecretNotFoundError`` when the Secrets panel has no such key,
  - ``NotebookAccessError`` when it has it but this notebook was not granted
    access,
and otherwise returns the payload. The error messages are the real ones.

Environment (set by the test):
  COLABMAGIC_STANDIN_USERDATA          JSON file {key: {"payload": str, "access": bool}}
  COLABMAGIC_STANDIN_USERDATA_NO_UI=1  no browser answers (the TimeoutException case)
  COLABMAGIC_STANDIN_USERDATA_WAIT     seconds the no-answer case waits (real: 10)
``calls`` records every key asked for.
"""

from __future__ import annotations

import json
import os
import re
import threading

from google.colab import errors

calls: list = []
_lock = threading.Lock()


class NotebookAccessError(Exception):
    """Exception thrown when the current notebook doesn't have access to the requested secret."""

    def __init__(self, key):
        super().__init__(f"Notebook does not have access to secret {key}")


class SecretNotFoundError(errors.Error):
    """Exception thrown when the requested secret is not found."""

    def __init__(self, key):
        super().__init__(f"Secret {key} does not exist.")


class TimeoutException(errors.Error):
    """Exception thrown when requesting a secret times out."""

    def __init__(self, key):
        super().__init__(
            f"Requesting secret {key} timed out. Secrets can only be fetched when running from the Colab UI."
        )


def _blocking_request(key):
    """The browser's answer to GetSecret, or None after the timeout (the real one waits 10 s)."""
    if os.environ.get("COLABMAGIC_STANDIN_USERDATA_NO_UI") == "1":
        from google.colab import _message

        return _message.no_reply(float(os.environ.get("COLABMAGIC_STANDIN_USERDATA_WAIT", "10")))
    try:
        with open(os.environ["COLABMAGIC_STANDIN_USERDATA"]) as fh:
            store = json.load(fh)
    except (KeyError, OSError, ValueError):
        store = {}
    entry = store.get(key)
    if entry is None:
        return {"exists": False}
    return {"exists": True, "access": bool(entry.get("access", True)), "payload": entry.get("payload", "")}


def get(key):
    """Fetches the value for specified secret keys."""
    if not key or not isinstance(key, str):
        raise ValueError("Please enter a valid secret name")
    if re.search(r"\s", key):
        raise ValueError("Secret name cannot contain spaces or whitespace")
    calls.append(key)
    with _lock:
        resp = _blocking_request(key)
    if not resp:
        raise TimeoutException(key)
    if not resp.get("exists", False):
        raise SecretNotFoundError(key)
    if not resp.get("access", False):
        raise NotebookAccessError(key)
    return resp.get("payload", "")
