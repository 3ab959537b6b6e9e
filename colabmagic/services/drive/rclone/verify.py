"""What the rclone backend verifies with: a checksum the remote and Python both compute, read from the
remote itself (rc ``operations/stat`` reads the remote, not the mount's cache)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

from ..backend import FileFacts, FlushTimeout
from .remote import remote_and_config

if TYPE_CHECKING:
    from . import RcloneBackend

HASH_PREFERENCE = ("sha256", "md5", "sha1", "crc32")
STAT_THREADS = 4  # operations/stat calls at once


def hash_algo(backend: RcloneBackend, deadline: float) -> Tuple[Optional[str], str]:
    """The checksum to verify with (the first of HASH_PREFERENCE the remote offers) and a label."""
    remote, _ = remote_and_config(backend.config)
    info = backend.rc("operations/fsinfo", {"fs": remote}, timeout=max(1.0, deadline - time.monotonic()))
    supported = [h.lower() for h in info.get("Hashes") or []]
    for algo in HASH_PREFERENCE:
        if algo in supported:
            return algo, f"{algo} read from the remote"
    offered = ", ".join(supported) or "none"
    return None, f"size only (the remote offers no checksum computed here: {offered})"


def remote_files(backend: RcloneBackend, rel_paths: Sequence[str], algo: Optional[str],
                 deadline: float) -> Dict[str, FileFacts]:
    """size and checksum on the remote itself (not through the mount) of each path present; what the
    flush already read back as expected (``backend.confirmed``) is not read twice."""
    known = {p: backend.confirmed[p] for p in rel_paths if p in backend.confirmed}
    rel_paths = [p for p in rel_paths if p not in known]
    remote, _ = remote_and_config(backend.config)
    opt: Dict[str, Any] = {"showHash": True, "hashTypes": [algo]} if algo else {"noModTime": True}

    def stat(rel: str) -> Optional[Dict[str, Any]]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FlushTimeout("reading the files back from the remote took longer than the timeout", {})
        try:
            return backend.rc("operations/stat", {"fs": remote, "remote": rel, "opt": opt}, timeout=left).get("item")
        except OSError:  # the answer did not come in time (a large file hashed on a slow remote)
            raise FlushTimeout("reading the files back from the remote took longer than the timeout", {})

    found = dict(known)
    with ThreadPoolExecutor(max_workers=STAT_THREADS) as pool:
        for rel, item in zip(rel_paths, pool.map(stat, rel_paths)):
            if item and not item.get("IsDir"):
                hashes = {k.lower(): v for k, v in (item.get("Hashes") or {}).items()}
                found[rel] = (int(item.get("Size", -1)), hashes.get(algo) if algo else None)
    return found
