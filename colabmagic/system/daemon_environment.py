"""The environment every daemon starts with: built on purpose from a short list, never the kernel's.

A notebook kernel's environment holds the user's tokens (FRP_TOKEN,
NGROK_AUTHTOKEN, Colab and Kaggle secrets, cloud keys). A daemon inherits
what it is given and passes it to everything it starts: an SSH login, a
desktop session and every terminal opened in it. So daemons get only what a
desktop or SSH session needs to work like the kernel's (paths, locale, time
zone, who the user is, the library and GPU variables), colabmagic's own
markers, and what the service itself asks for by name (``ServiceSpec.env``).
A name that looks like it holds a secret is never passed on, whatever its prefix.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Mapping, Optional

# Passed on as they are when the kernel has them.
NAMES = (
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME", "SHELL", "TMPDIR",
    "LD_LIBRARY_PATH", "PYTHONPATH",
    # TLS trust for agents and downloads behind a corporate CA.
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
)
# Variable families a desktop or SSH session needs (spec section 2), and colabmagic's own markers
# (COLABMAGIC_HOME, COLABMAGIC_OFFLINE, the demo runner's run marker, the per-start service token).
PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "TPU_", "XLA_", "COLAB_", "COLABMAGIC_")
# A proxy is passed on only without credentials in it (http://user:password@proxy:3128 is a secret).
PROXIES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy",
           "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
# Never passed on, whatever the prefix: anything named like a credential.
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASS(WORD|WD|PHRASE)?($|_)|(^|_)PWD$|KEY|CREDENTIAL|AUTH|COOKIE|SESSION_ID",
                         re.IGNORECASE)
# Ours, random per start and not a credential: how a stop finds a daemon's descendants.
OWN_MARKERS = ("COLABMAGIC_SERVICE_TOKEN",)


def secret_like(name: str) -> bool:
    """True for a variable name that looks like it holds a credential (never passed to a daemon)."""
    return name not in OWN_MARKERS and bool(SECRET_LIKE.search(name))


def allowed(name: str, value: str) -> bool:
    """Whether the kernel's ``name=value`` may be passed to a daemon."""
    if secret_like(name):
        return False
    if name in PROXIES:
        return "@" not in value
    return name in NAMES or name.startswith(PREFIXES)


def minimal(extra: Optional[Mapping[str, str]] = None, source: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The kernel's allowed variables (see ``allowed``), then ``extra`` (what the service asked for)."""
    env = os.environ if source is None else source
    out = {name: value for name, value in env.items() if allowed(name, value)}
    out.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    out.update(extra or {})
    return out
