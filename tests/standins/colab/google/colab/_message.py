"""Stand-in for ``google.colab._message``: only ``MessageError``.

Follows colabtools google/colab/_message.py (commit 3c07d77, 2026-04):
``read_reply_from_input`` raises ``MessageError(reply['error'])`` when the
browser answers a request with an error, and returns None when
``timeout_sec`` passes without an answer (with no timeout it waits for ever).
The waiting itself is played by the stand-ins that use it (output.eval_js,
userdata.get).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Optional

from google.colab import errors


class MessageError(errors.Error):
    """Thrown on error response from frontend."""


# How long "for ever" lasts here: long enough that a caller without a timeout is caught by the
# test's own timeout, short enough that a forgotten test does not hold CI for an hour.
FOREVER_ENV = "COLABMAGIC_STANDIN_COLAB_FOREVER"


def no_reply(timeout_sec: Optional[float]) -> Any:
    """What read_reply_from_input does when the browser never answers: None after the timeout."""
    if timeout_sec:
        time.sleep(float(timeout_sec))
        return None
    threading.Event().wait(float(os.environ.get(FOREVER_ENV, "3600")))
    raise RuntimeError("google.colab stand-in: a request without timeout_sec waited 'for ever' "
                       "(hosted Colab would block the kernel for good)")
