"""Secrets: where they come from, where they are kept, and how they stay out of sight.

A secret is read from an explicit Python argument, then an environment
variable, then Colab's Secrets (``google.colab.userdata``), then Kaggle's
(``kaggle_secrets.UserSecretsClient().get_secret``), then a getpass prompt,
in that order, and never from a magic's line. It is kept in a 0600 file
under ``$COLABMAGIC_HOME/secrets`` and wrapped in ``Secret``, whose repr and
str are masked, so printing an object never shows it.

Colab's ``userdata.get`` (colabtools google/colab/userdata.py) raises
SecretNotFoundError, NotebookAccessError (the secret exists, this notebook
was not granted it) or, after 10 s without an answer from Colab's UI,
TimeoutException. Kaggle's client (Kaggle/docker-python
patches/kaggle_secrets.py, kaggle_web_client.py) raises CredentialError
without its session token, ConnectionError when the notebook's internet is
off, and BackendError for a label not attached to the notebook. A secret
the notebook was not granted is an error saying how to grant it; the other
failures fall through to the next source and are remembered for the kernel
(a missing secret is asked for once per kernel, a Secrets service that timed
out is not asked again), and ``hint(name)`` says in one line what to do.
On Kaggle, whose image also carries ``google.colab``, Colab's Secrets are not
asked (they would only time out).
"""

from __future__ import annotations

import getpass
import os
import re
import secrets as _random
import string
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from ..errors import BadInputError, ColabMagicError
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


class SecretAccessError(ColabMagicError):
    """A platform's Secrets hold the secret, but this notebook may not read it."""


COLAB_PANEL = "the Secrets panel (the key icon in Colab's left sidebar)"
KAGGLE_PANEL = "Add-ons > Secrets in Kaggle's notebook editor"
# What the platforms' Secrets said, per kernel: (source, name) -> the one line to show; a
# source that timed out is stored under the name "*" and not asked again.
_failed: Dict[Tuple[str, str], str] = {}


def forget() -> None:
    """Ask the platform's Secrets again (as a new kernel would)."""
    _failed.clear()


def hint(name: str) -> str:
    """One line saying why the platform's Secrets gave nothing for ``name``, or ''."""
    for source in ("colab", "kaggle"):
        line = _failed.get((source, name)) or _failed.get((source, "*"))
        if line:
            return line
    return ""


def _from_colab(name: str) -> Optional[str]:
    from . import environment

    if environment.is_kaggle() or ("colab", name) in _failed or ("colab", "*") in _failed:
        return None
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except Exception:
        return None
    try:
        value = userdata.get(name)
    except Exception as err:  # told apart by name: each google.colab release defines its own classes
        kind = type(err).__name__
        if kind == "NotebookAccessError":
            raise SecretAccessError(
                f"Colab's Secrets hold {name}, but this notebook has no access to it: turn on "
                f"\"Notebook access\" for {name} in {COLAB_PANEL}, then run this again"
            ) from None
        if kind == "TimeoutException":
            _failed[("colab", "*")] = (
                f"Colab's Secrets did not answer (they can be read only while the notebook runs in Colab's "
                f"UI); set {name} in the environment instead (os.environ[{name!r}] = ...)"
            )
        elif kind == "SecretNotFoundError":
            _failed[("colab", name)] = (
                f"Colab's Secrets have no {name}: add it in {COLAB_PANEL} and turn on its notebook access "
                f"(colabmagic asks once per kernel: restart the kernel, or call colabmagic.system.secrets.forget())"
            )
        else:
            _failed[("colab", name)] = f"Colab's Secrets could not give {name} ({kind}: {err})"
        return None
    return value or None


def _http_code(err: BaseException) -> Optional[int]:
    code = getattr(err.__cause__, "code", None)
    return code if isinstance(code, int) else None


def _from_kaggle(name: str) -> Optional[str]:
    from . import environment

    if not environment.is_kaggle() or ("kaggle", name) in _failed or ("kaggle", "*") in _failed:
        return None
    try:
        from kaggle_secrets import UserSecretsClient  # type: ignore[import-not-found]
    except Exception:
        return None
    try:
        value = UserSecretsClient().get_secret(name)
    except Exception as err:
        kind = type(err).__name__
        if kind == "CredentialError":
            _failed[("kaggle", "*")] = (
                f"Kaggle's Secrets are not available in this session ({err}); "
                f"set {name} in the environment instead"
            )
        elif isinstance(err, ConnectionError) and _http_code(err):
            # The real client reports an HTTP error (a refused token: 401/403) as a ConnectionError.
            _failed[("kaggle", "*")] = (
                f"Kaggle's Secrets service refused this session (HTTP {_http_code(err)}); "
                f"set {name} in the environment instead"
            )
        elif isinstance(err, ConnectionError):
            _failed[("kaggle", "*")] = (
                f"Kaggle's Secrets service could not be reached (is the notebook's internet on?); "
                f"set {name} in the environment instead"
            )
        else:  # BackendError: no such label among the secrets attached to this notebook
            _failed[("kaggle", name)] = (
                f"Kaggle's Secrets gave no {name} for this notebook: add it under {KAGGLE_PANEL} and tick "
                f"it for this notebook (colabmagic asks once per kernel: restart the kernel, or call "
                f"colabmagic.system.secrets.forget())"
            )
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
    """Find secret ``name``: explicit value, environment, Colab Secrets, Kaggle Secrets, then a prompt."""
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
    kaggle = _from_kaggle(name)
    if kaggle:
        return Secret(kaggle, source="kaggle-secrets")
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
