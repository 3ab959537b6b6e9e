"""The platform matrix (``make matrix``): tests/matrix/run.sh runs tests/matrix/inside in Debian 11
and Debian 13 chroots. Here, on the machine itself, those tests are skipped."""

from __future__ import annotations

import os
from typing import Any, List

import pytest

INSIDE = os.path.join("tests", "matrix", "inside")


def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    if os.environ.get("COLABMAGIC_MATRIX_INSIDE") == "1":
        return
    skip = pytest.mark.skip(reason="runs inside the platform matrix's chroots (make matrix)")
    for item in items:
        if INSIDE in str(item.fspath):
            item.add_marker(skip)
