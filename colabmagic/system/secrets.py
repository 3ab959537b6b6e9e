"""Secrets: where they come from, where they are kept, and how they stay out of sight.

A secret is read from an explicit Python argument, then an environment
variable, then Colab's Secrets (``google.colab.userdata``), then a getpass
prompt, in that order, and never from a magic's line. It is kept in a 0600
file under ``$COLABMAGIC_HOME/secrets`` and wrapped in ``Secret``, whose
repr and str are masked, so printing an object never shows it.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets as _random
import string
from pathlib import Path
from typing import Optional, Union

from ..errors import BadInputError
from . import paths

MASK = "********"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class Secret:
    """A secret value that prints as ``********``; ``reveal()`` gives the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "explicit"):
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK}, source={self.source!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return _random.compare_digest(self._value, other._value)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


SecretLike = Union[str, Secret, None]


def _check_name(name: str) -> str:
    if not NAME.match(name):
        raise BadInputError(f"not a secret name: {name!r}")
    return name


def secrets_dir() -> Path:
    return paths.subdir("secrets")


def secret_path(name: str) -> Path:
    return secrets_dir() / _check_name(name)


def store(name: str, value: Union[str, Secret]) -> Path:
    """Keep ``value`` in a 0600 file; returns its path (safe to put in a config file)."""
    raw = value.reveal() if isinstance(value, Secret) else value
    path = secret_path(name)
    paths.write_file(path, raw, mode=0o600)
    return path


def load(name: str) -> Optional[Secret]:
    try:
        return Secret(secret_path(name).read_text(), source="stored")
    except OSError:
        return None


def _from_colab(name: str) -> Optional[str]:
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except Exception:
        return None
    try:
        value = userdata.get(name)
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException
        return None
    return value or None


def _can_prompt() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        return True
    try:
        return os.isatty(0)
    except OSError:
        return False


def get(name: str, explicit: SecretLike = None, prompt: bool = True, description: str = "") -> Optional[Secret]:
    """Find secret ``name``: explicit value, environment, Colab Secrets, then a prompt."""
    _check_name(name)
    if isinstance(explicit, Secret):
        return explicit
    if explicit:
        return Secret(explicit, source="explicit")
    env = os.environ.get(name)
    if env:
        return Secret(env, source="environment")
    colab = _from_colab(name)
    if colab:
        return Secret(colab, source="colab-secrets")
    if prompt and _can_prompt():
        try:
            entered = getpass.getpass(f"{description or name} (input hidden): ")
        except Exception:  # no stdin in this frontend
            entered = ""
        if entered:
            return Secret(entered, source="prompt")
    return None


def generate_password(length: int = 24) -> Secret:
    """A strong random password of letters and digits (no characters that need quoting)."""
    alphabet = string.ascii_letters + string.digits
    return Secret("".join(_random.choice(alphabet) for _ in range(length)), source="generated")


def generate_token(nbytes: int = 24) -> Secret:
    return Secret(_random.token_urlsafe(nbytes), source="generated")
