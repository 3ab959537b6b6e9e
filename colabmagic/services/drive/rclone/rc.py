"""rclone's remote-control API on loopback: the client, and the credentials it and the mount share.

The mount's API takes basic auth from a 0600 htpasswd file (never a password
on the command line); the password is colabmagic's own, kept in its secrets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

from ....errors import ColabMagicError
from ....system import paths, secrets

RC_USER = "colabmagic"


def drive_dir() -> Path:
    """Where the rclone backend keeps its files (rc.htpasswd, rclone.conf, cache/, fuse2-bin/)."""
    return paths.subdir("drive")


def _rc_password() -> secrets.Secret:
    stored = secrets.load("drive_rc")
    if stored:
        return stored
    value = secrets.generate_password(24)
    secrets.store("drive_rc", value)
    return value


def htpasswd() -> Path:
    """A 0600 htpasswd file (SHA-1 form, which rclone accepts) for the rc API's basic auth."""
    digest = base64.b64encode(hashlib.sha1(_rc_password().reveal().encode()).digest()).decode()
    path = drive_dir() / "rc.htpasswd"
    paths.write_file(path, f"{RC_USER}:{{SHA}}{digest}\n")
    return path


def rc_call(port: int, command: str, params: Optional[Dict[str, Any]] = None, timeout: float = 10.0) -> Dict[str, Any]:
    """Call rclone's remote-control API on loopback and return its JSON answer (rclone's own error
    message as a ColabMagicError when it answers with one)."""
    auth = base64.b64encode(f"{RC_USER}:{_rc_password().reveal()}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{command}",
        data=json.dumps(params or {}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read().decode() or "{}")
    except urllib.error.HTTPError as err:
        try:
            why = json.loads(err.read().decode()).get("error", "")
        except (OSError, ValueError, AttributeError):
            why = ""
        raise ColabMagicError(f"rclone {command}: {why or err}")
