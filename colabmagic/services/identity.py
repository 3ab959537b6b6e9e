"""An SSH identity that outlives the runtime: same host key, same address, same ``~/.ssh/config``.

An identity is a folder the user owns (on Drive, or any persistent path),
0700, holding 0600 files that colabmagic never prints:

- ``ssh_host_ed25519_key`` (+ ``.pub``): the host key colabmagic's sshd serves;
- ``authorized_keys``: the keys allowed to log in;
- ``relay_key`` (+ ``.pub``): the key the VM logs in to an ssh relay with;
- ``relay_known_hosts``: the relay's pinned host key (when given as a file);
- ``cloudflared_token``: a named tunnel's token (from the secret CLOUDFLARE_TUNNEL_TOKEN);
- ``settings.json``: when it was first used, the Host alias, the login user,
  sshd's loopback port, the provider and its settings (relay and remote port,
  frp server and port or domain, ngrok domain or TCP address, cloudflared hostname).

On a new runtime, ``prepare`` puts the host key in place before sshd starts
and fills in every setting the user did not give again, so the printed
known_hosts line and Host block come out byte-identical. The host key alone
can also come from the secret COLABMAGIC_SSH_HOST_KEY; a secret holding a
different key than the folder is an error naming both fingerprints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

from ..errors import BadInputError, ServiceError
from ..system import paths, secrets
from . import sshd

HOST_KEY_SECRET = "COLABMAGIC_SSH_HOST_KEY"
TUNNEL_TOKEN_SECRET = "CLOUDFLARE_TUNNEL_TOKEN"
HOST_KEY = "ssh_host_ed25519_key"
AUTHORIZED_KEYS = "authorized_keys"
RELAY_KEY = "relay_key"
RELAY_KNOWN_HOSTS = "relay_known_hosts"
CLOUDFLARED_TOKEN = "cloudflared_token"
SETTINGS = "settings.json"
# Provider options kept per provider (never a secret: tokens live in their own files).
Check = Callable[[str, Dict[str, Any], Optional[str]], None]
KEPT = ("relay", "relay_host_key", "remote_port", "server", "domain", "hostname", "remote_addr", "region")


@dataclass(frozen=True)
class KeyPair:
    private: str  # OpenSSH private key text: never printed, never logged
    public: str  # "TYPE BASE64"

    @property
    def fingerprint(self) -> str:
        blob = self.public.split()[1]
        digest = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def __repr__(self) -> str:
        return f"KeyPair({self.fingerprint})"


@dataclass
class Plan:
    """What ``%tunnel ssh`` runs with once the identity has filled in what the user did not say."""

    via: Optional[str]
    options: Dict[str, Any]
    keys: Tuple[str, ...]
    user: Optional[str]
    port: Optional[int]
    host_alias: Optional[str]
    identity: Optional[Path] = None
    report: List[str] = field(default_factory=list)  # lines to print before the instructions


# --- keys ----------------------------------------------------------------------------------------

def _keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise ServiceError("ssh-keygen was not found (package openssh-client)")
    return found


def public_of(private: str, where: str) -> KeyPair:
    """The public half of an OpenSSH private key (ssh-keygen -y reads it from a private 0600 file)."""
    text = private.strip() + "\n"
    if "PRIVATE KEY" not in text:
        raise BadInputError(f"{where} does not hold an OpenSSH private key")
    folder = tempfile.mkdtemp(prefix="colabmagic-key-")
    try:
        path = Path(folder) / "key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        result = subprocess.run([_keygen(), "-y", "-P", "", "-f", str(path)], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    parts = result.stdout.split()
    if result.returncode != 0 or len(parts) < 2:
        raise BadInputError(f"{where} is not a usable private key (protected by a passphrase, or damaged)")
    return KeyPair(text, f"{parts[0]} {parts[1]}")


def _generate(comment: str) -> KeyPair:
    folder = tempfile.mkdtemp(prefix="colabmagic-key-")
    try:
        path = Path(folder) / "key"
        result = subprocess.run([_keygen(), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"ssh-keygen could not make a key: {result.stderr.strip()}")
        private = path.read_text()
        public = " ".join(Path(f"{path}.pub").read_text().split()[:2])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return KeyPair(private, public)


def _read_pair(private_path: Path, where: str) -> Optional[KeyPair]:
    try:
        text = private_path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadInputError(f"cannot read {where} ({private_path}): {exc.strerror}") from None
    return public_of(text, f"{where} ({private_path})")


# --- the folder ----------------------------------------------------------------------------------

def check_folder(path: str) -> Path:
    """The identity folder (created 0700 if missing); it must belong to the user running colabmagic."""
    text = str(path or "").strip()
    if not text:
        raise BadInputError("--identity needs a folder path")
    if text.startswith("-"):
        raise BadInputError(f"--identity: a path may not start with '-': {text!r}")
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        folder = Path.cwd() / folder
    if folder.exists() and not folder.is_dir():
        raise BadInputError(f"--identity: {folder} is not a folder")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise BadInputError(f"--identity: {folder.parent} does not exist (is Drive mounted?)")
    return folder


def _own(folder: Path) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.geteuid():
        raise BadInputError(f"--identity: {folder} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}); "
                            "use a folder you own")
    _chmod(folder, 0o700)


def _chmod(path: Path, mode: int) -> None:
    """Set ``mode``; a file system without Unix modes (some Drive mounts) refuses, and that is kept."""
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def _write(folder: Path, name: str, data: str) -> None:
    """One identity file, written whole (temp file created 0600, then renamed)."""
    path = folder / name
    try:
        if path.read_text() == data:
            _chmod(path, 0o600)
            return
    except (OSError, UnicodeDecodeError):
        pass
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_settings(folder: Path) -> Dict[str, Any]:
    try:
        text = (folder / SETTINGS).read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadInputError(f"cannot read {folder / SETTINGS}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise BadInputError(f"{folder / SETTINGS} is damaged (not JSON); move it away to start a new identity") from None
    return data if isinstance(data, dict) else {}


def _save_settings(folder: Path, data: Dict[str, Any]) -> None:
    _write(folder, SETTINGS, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _first_used(settings: Dict[str, Any]) -> str:
    return str(settings.get("created") or "")[:10] or "an earlier runtime"


# --- the host key --------------------------------------------------------------------------------

def _secret_host_key() -> Optional[KeyPair]:
    secret = secrets.get(HOST_KEY_SECRET, prompt=False)
    if not secret:
        return None
    return public_of(secret.reveal(), f"the secret {HOST_KEY_SECRET}")


def _machine_host_key() -> Optional[KeyPair]:
    """The host key colabmagic's sshd already has on this machine, if any."""
    return _read_pair(sshd.state_dir() / HOST_KEY, "colabmagic's host key")


def install_host_key(pair: KeyPair) -> None:
    """Put ``pair`` where colabmagic's sshd reads its host key (``sshd.host_key``), before sshd starts."""
    folder = sshd.state_dir()
    paths.write_file(folder / f"{HOST_KEY}.pub", f"{pair.public} colabmagic-host\n", mode=0o644)
    paths.write_file(folder / HOST_KEY, pair.private, mode=0o600)


def _alias(pair: KeyPair) -> str:
    """The Host alias of an identity: colabmagic-<8 hex of its host key> (as sshd's HostKeyAlias)."""
    digest = hashlib.sha256(base64.b64decode(pair.public.split()[1])).hexdigest()
    return f"colabmagic-{digest[:8]}"


# --- preparing a %tunnel ssh ---------------------------------------------------------------------

def _merge_options(saved: Dict[str, Any], given: Dict[str, Any]) -> Dict[str, Any]:
    merged = dict(saved)
    if given.get("relay_host_key") or given.get("relay_known_hosts"):
        merged.pop("relay_host_key", None)
        merged.pop("relay_known_hosts", None)
    merged.update({k: v for k, v in given.items() if v not in (None, "")})
    return merged


def _port_usable(port: Any) -> bool:
    if not isinstance(port, int) or not 0 < port < 65536:
        return False
    if sshd.running_port() == port:
        return True
    return sshd.procfs_free(port)


def prepare(
    path: Optional[str],
    via: Optional[str],
    options: Dict[str, Any],
    keys: Tuple[str, ...],
    user: Optional[str] = None,
    port: Optional[int] = None,
    default_via: str = "",
    check: Optional[Check] = None,
) -> Plan:
    """Fill in a ``%tunnel ssh`` from the identity at ``path`` and put its host key in place.

    Without ``path``, only the secret COLABMAGIC_SSH_HOST_KEY is looked at (the host key alone).
    ``check(via, options, user)`` is called with the completed request before anything is
    written (it raises on bad input).
    """
    from_secret = _secret_host_key()
    if not path:
        plan = Plan(via=via or default_via or None, options=dict(options), keys=keys, user=user, port=port,
                    host_alias=None)
        if check is not None:
            check(plan.via or "", dict(options), user)
        if from_secret is not None:
            install_host_key(from_secret)
            plan.report.append(f"host key from the secret {HOST_KEY_SECRET} ({from_secret.fingerprint})")
        return plan

    folder = check_folder(path)
    settings = load_settings(folder) if folder.is_dir() else {}
    kept = _read_pair(folder / HOST_KEY, "the identity's host key") if folder.is_dir() else None
    if kept is not None and from_secret is not None and kept.public != from_secret.public:
        raise BadInputError(
            f"host key mismatch: the identity {folder} holds {kept.fingerprint}, the secret {HOST_KEY_SECRET} "
            f"holds {from_secret.fingerprint}; remove one of them (or make them the same key)"
        )
    relay_key_file = options.get("relay_key_file")
    given_relay_key = None
    if relay_key_file:
        given_relay_key = _read_pair(Path(str(relay_key_file)).expanduser(), "--relay-key-file")
        if given_relay_key is None:
            raise BadInputError(f"--relay-key-file: cannot read {relay_key_file!r}")
    known_hosts_text = None
    if options.get("relay_known_hosts"):
        from .tunnels import ssh as ssh_provider

        known_hosts_text = ssh_provider.check_known_hosts(options["relay_known_hosts"])
    # The run as the identity completes it, checked by the caller before anything is written.
    chosen = via or settings.get("via") or default_via or ""
    token = secrets.get(TUNNEL_TOKEN_SECRET, prompt=False) if chosen == "cloudflared" else None
    if token:
        from .tunnels import cloudflared

        cloudflared.parse_token(token.reveal(), f"the secret {TUNNEL_TOKEN_SECRET}")
    merged = _merge_options(dict((settings.get("providers") or {}).get(chosen) or {}), options)
    if merged.get("relay_known_hosts") and not options.get("relay_known_hosts"):
        merged["relay_known_hosts"] = str(folder / RELAY_KNOWN_HOSTS)
    if chosen == "ssh" and not relay_key_file and (folder / RELAY_KEY).exists():
        merged["relay_key_file"] = str(folder / RELAY_KEY)
    if chosen == "cloudflared" and merged.get("hostname") and not token and (folder / CLOUDFLARED_TOKEN).exists():
        merged["token_file"] = str(folder / CLOUDFLARED_TOKEN)
    plan_user = user or settings.get("user") or None
    if check is not None:
        check(chosen, dict(merged), plan_user)

    # Everything is checked: from here on the identity and sshd's host key are written.
    _own(folder)
    plan = Plan(via=chosen or None, options=merged, keys=keys, user=plan_user, port=port, host_alias=None,
                identity=folder)
    pair: KeyPair
    if kept is not None:
        pair = kept
        plan.report.append(f"same host as before (identity from {folder}, first used {_first_used(settings)})")
    else:
        pair = from_secret or _machine_host_key() or _generate("colabmagic-host")
        _write(folder, f"{HOST_KEY}.pub", f"{pair.public} colabmagic-host\n")
        _write(folder, HOST_KEY, pair.private)
        settings["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        plan.report.append(f"new identity in {folder} (host key {pair.fingerprint}); keep this folder and run "
                           f"`%tunnel ssh --identity {folder}` on the next runtime for the same host and address")
    install_host_key(pair)
    settings.setdefault("alias", _alias(pair))
    plan.host_alias = str(settings["alias"])

    if keys:
        _write(folder, AUTHORIZED_KEYS, "".join(k + "\n" for k in keys))
    else:
        try:
            plan.keys = tuple(sshd.keys_from_text((folder / AUTHORIZED_KEYS).read_text(),
                                                  f"{folder / AUTHORIZED_KEYS}"))
        except FileNotFoundError:
            pass
    if plan_user:
        settings["user"] = plan_user
    if port is None and _port_usable(settings.get("sshd_port")):
        plan.port = int(settings["sshd_port"])

    if known_hosts_text is not None:
        _write(folder, RELAY_KNOWN_HOSTS, known_hosts_text)
        merged["relay_known_hosts"] = str(folder / RELAY_KNOWN_HOSTS)
    if given_relay_key is not None:
        _write(folder, RELAY_KEY, given_relay_key.private)
        _write(folder, f"{RELAY_KEY}.pub", given_relay_key.public + "\n")
    if chosen == "ssh":
        relay_key = _read_pair(folder / RELAY_KEY, "the identity's relay key")
        if relay_key is None and not secrets.get("RELAY_SSH_KEY", prompt=False):
            relay_key = _generate("colabmagic-relay")
            _write(folder, RELAY_KEY, relay_key.private)
            _write(folder, f"{RELAY_KEY}.pub", relay_key.public + "\n")
            plan.report.append("colabmagic logs in to the relay with the identity's own key; authorize it there "
                               f"(once):\n{relay_key.public} colabmagic-relay")
        if relay_key is not None:
            merged["relay_key_file"] = str(folder / RELAY_KEY)
    if chosen == "cloudflared" and token:
        _write(folder, CLOUDFLARED_TOKEN, token.reveal().strip() + "\n")
        if merged.get("hostname"):
            merged["token_file"] = str(folder / CLOUDFLARED_TOKEN)
    providers = settings.setdefault("providers", {})
    providers[chosen] = {k: v for k, v in merged.items() if k in KEPT or k == "relay_known_hosts"}
    if chosen:
        settings["via"] = chosen
    _save_settings(folder, settings)
    for name in (HOST_KEY, f"{HOST_KEY}.pub", AUTHORIZED_KEYS, RELAY_KEY, f"{RELAY_KEY}.pub",
                 RELAY_KNOWN_HOSTS, CLOUDFLARED_TOKEN, SETTINGS):
        if (folder / name).exists():
            _chmod(folder / name, 0o600)
    return plan


def remember(plan: Plan, via: str, sshd_port: int, public_port: Optional[int]) -> None:
    """After the tunnel is up: keep sshd's port and the address the provider gave (a relay- or
    frps-allocated remote port becomes the fixed one next time)."""
    if plan.identity is None:
        return
    settings = load_settings(plan.identity)
    settings["sshd_port"] = sshd_port
    settings["via"] = via
    kept = settings.setdefault("providers", {}).setdefault(via, {})
    if via in ("ssh", "frp") and public_port and not kept.get("remote_port"):
        kept["remote_port"] = public_port
    settings["last_used"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _save_settings(plan.identity, settings)


def vscode_url(alias: str, folder: str) -> str:
    """A link VS Code opens with Remote-SSH: ``vscode://vscode-remote/ssh-remote+ALIAS/FOLDER``."""
    path = "/" + str(folder).strip("/")
    return f"vscode://vscode-remote/ssh-remote+{quote(alias, safe='')}{quote(path, safe='/')}"
