"""colabmagic's exceptions, shown in a notebook as one clear line plus the service's last log lines.

IPython calls ``_render_traceback_`` on an exception that has it and prints
what it returns instead of a traceback. Expected failures (a port in use, a
package that does not exist, a relay that refuses us) use these classes; a
real bug raises anything else and keeps its full traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Optional


def log_tail(path: Optional[Path], lines: int = 15) -> List[str]:
    """The last ``lines`` lines of a log file, or nothing if it cannot be read."""
    if path is None:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


class ColabMagicError(Exception):
    """An expected failure: one line for the user, plus context lines (a log tail)."""

    def __init__(self, message: str, *, log: Optional[Path] = None, details: Optional[List[str]] = None):
        super().__init__(message)
        self.message = message
        self.log = log
        self.details = list(details or [])
        if log is not None and not self.details:
            self.details = log_tail(log)

    def _render_traceback_(self) -> List[str]:
        out = [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self.message}"]
        if self.details:
            where = f" ({self.log})" if self.log else ""
            out.append(f"last lines of the log{where}:")
            out.extend(f"  {line}" for line in self.details)
        return out

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  {line}" for line in self.details)


class ServiceError(ColabMagicError):
    """A daemon failed to start, become ready, or stay up."""


class InstallError(ColabMagicError):
    """A Debian package could not be installed."""


class PortInUseError(ColabMagicError):
    """A port we need is held by another program (named in the message)."""


class BadInputError(ColabMagicError):
    """A value the user gave was refused before anything started.

    The message stays one short line: a value quoted in it that is longer than 160
    characters (a pasted wall of text) is cut, as the magics' argument parser does.
    """

    MAX_VALUE = 160

    def __init__(self, message: str, **kwargs: Any):
        n = self.MAX_VALUE
        message = re.sub(r"(['\"])([^'\"]{" + str(n) + r"})[^'\"]{4,}\1",
                         lambda m: f"{m.group(1)}{m.group(2)}...{m.group(1)}", message)
        message = re.sub(r"(?<![\w'\"])(?!['\"])(\S{" + str(n) + r"})\S{4,}", lambda m: m.group(1) + "...", message)
        super().__init__(message, **kwargs)


class NotRootError(ColabMagicError):
    """colabmagic needs root or passwordless sudo for this step."""


class UnsafeHomeError(ColabMagicError):
    """$COLABMAGIC_HOME is not a real folder that only this user can write to."""
