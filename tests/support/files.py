"""A file's sha256, read in 1 MiB blocks: how the tests check that what arrived is what was sent."""

from __future__ import annotations

import hashlib
import os
from typing import Union


def sha256(path: Union[str, os.PathLike[str]]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
