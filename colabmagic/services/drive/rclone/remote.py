"""The remote as rclone sees it, and the rclone config that reaches it (our own for Google Drive credentials)."""

from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Tuple

from ....errors import ColabMagicError
from ....system import paths
from ..config import DriveConfig
from .rc import drive_dir

REMOTE_PREFIX = re.compile(r"^:?[\w.@ -]+:")  # rclone's "remote:" / ":backend:" (fspath.Parse)
GOOGLE_HOWTO = (
    "for Google Drive off Colab, either set %config DriveMagics.credentials = '/path/to/service-account.json' "
    "(Google Cloud console > IAM > Service accounts > Keys > Add key > JSON, then share the Drive folder "
    "with the account's e-mail), or log in once with `gcloud auth application-default login "
    "--scopes=https://www.googleapis.com/auth/drive,https://www.googleapis.com/auth/cloud-platform` and set "
    "DriveMagics.credentials = 'google-auth'"
)


def remote_label(config: DriveConfig) -> str:
    """The remote as reports name it."""
    if config.credentials:
        return f"Google Drive:{config.remote.split(':', 1)[-1]}"
    return config.remote


def remote_and_config(config: DriveConfig) -> Tuple[str, List[str]]:
    """The remote as rclone should see it, and the ``--config`` arguments to reach it.

    With ``credentials`` (a service-account file, or "google-auth"), we write
    our own 0600 rclone config with a Google Drive remote ``colabmagic_drive``
    and the remote setting is a folder in that Drive.
    """
    remote = config.remote
    if config.credentials:
        folder = remote.split(":", 1)[1] if ":" in remote and not remote.startswith("/") else remote
        lines = ["[colabmagic_drive]", "type = drive", "scope = drive"]
        if config.credentials == "google-auth":
            lines.append(f"token = {json.dumps(_google_auth_token())}")
        else:
            sa = os.path.abspath(os.path.expanduser(config.credentials))
            if not os.path.isfile(sa):
                raise ColabMagicError(f"service-account file not found: {sa}; {GOOGLE_HOWTO}")
            lines.append(f"service_account_file = {sa}")
        path = drive_dir() / "rclone.conf"
        paths.write_file(path, "\n".join(lines) + "\n", mode=0o600)
        return f"colabmagic_drive:{folder.lstrip('/')}", ["--config", str(path)]
    if config.rclone_config:
        return remote, ["--config", config.rclone_config]
    return remote, []


def _google_auth_token() -> Dict[str, str]:
    """An OAuth token for rclone from the notebook's google-auth credentials (valid about an hour)."""
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError as err:
        raise ColabMagicError(f"google-auth is not available ({err}); {GOOGLE_HOWTO}")
    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/drive"])
    except Exception as err:
        raise ColabMagicError(f"no google-auth credentials in this notebook ({type(err).__name__}): on Colab run "
                              f"google.colab.auth.authenticate_user() first; {GOOGLE_HOWTO}")
    try:
        creds.refresh(google.auth.transport.requests.Request())
    except Exception as err:
        raise ColabMagicError(f"the notebook's google-auth credentials could not be refreshed "
                              f"({type(err).__name__}); {GOOGLE_HOWTO}")
    expiry = creds.expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if getattr(creds, "expiry", None) else ""
    return {"access_token": creds.token, "token_type": "Bearer", "expiry": expiry}


def local_path(remote: str) -> bool:
    """Whether rclone takes ``remote`` for a local path (no ``name:`` or ``:backend:`` prefix)."""
    return not REMOTE_PREFIX.match(remote)
