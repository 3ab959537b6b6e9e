"""colabmagic's own sshd: config, host key, authorized keys, session environment, supervision.

It never touches the system sshd or /etc/ssh/sshd_config. Everything lives
in ``$COLABMAGIC_HOME/sshd``: a host key generated once per machine and
reused (so clients can pin it), an authorized_keys file, and a config file
written whole from data, checked with ``sshd -t -f`` and run in the
foreground (``sshd -D -e -f``) under the supervisor, listening on 127.0.0.1
only. Key login is the default; a password is an explicit opt-in. SSH
sessions get the kernel's environment through ``SetEnv`` in that config.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import BadInputError, NotRootError, ServiceError
from ..system import daemon_environment, environment, installer, paths, probes, secrets, supervisor

SERVICE = "sshd"
GROUP = "ssh"
DEFAULT_USER = "root"
PASSWORD_SECRET = "SSH_PASSWORD"
PUBLIC_KEY_SECRET = "SSH_PUBLIC_KEY"
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
GITHUB_USER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ENV_PREFIXES = ("CUDA_", "NVIDIA_", "TPU_", "XLA_", "COLAB_")
ENV_FIXED = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH")
# Set in our sessions only; /etc/profile.d/colabmagic-ssh-env.sh restores PATH from it after
# Debian's /etc/profile resets PATH in interactive (login) shells.
PATH_CARRIER = "COLABMAGIC_SSH_PATH"
PROFILE_HOOK = Path("/etc/profile.d/colabmagic-ssh-env.sh")
PROFILE_HOOK_TEXT = (
    "# Written by colabmagic. Only sessions of colabmagic's own sshd carry COLABMAGIC_SSH_PATH:\n"
    "# they keep the notebook kernel's PATH, which /etc/profile would otherwise reset.\n"
    'if [ -n "${COLABMAGIC_SSH_PATH:-}" ]; then PATH="$COLABMAGIC_SSH_PATH"; export PATH; fi\n'
)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SshdConfig:
    """What the user asked for: plain data built by the magic (or a Python caller)."""

    user: str = DEFAULT_USER
    port: Optional[int] = None  # None: the port used last time if free, else a free one
    keys: Tuple[str, ...] = ()  # validated public key lines
    password: bool = False
    env_names: Tuple[str, ...] = ()
    allow_forwarding: bool = False  # TCP forwarding for a user other than root (root always has it)


@dataclass(frozen=True)
class HostKey:
    path: Path
    key_type: str
    blob: str  # base64
    fingerprint: str  # SHA256:...

    def known_hosts_line(self, alias: str) -> str:
        return f"{alias} {self.key_type} {self.blob}"

    @property
    def alias(self) -> str:
        """A name for this machine's key, stable as long as the key is: colabmagic-<8 hex>."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).hexdigest()
        return f"colabmagic-{digest[:8]}"


@dataclass(frozen=True)
class Sshd:
    """colabmagic's running sshd (``_colabmagic.sshd``)."""

    port: int
    user: str
    pid: Optional[int]
    status: str
    fingerprint: str
    known_hosts_line: str
    host_key_alias: str
    config_path: str
    password_login: bool
    reused: bool = False
    password: Optional[secrets.Secret] = field(default=None, repr=False, compare=False)

    def _fields(self) -> list:
        return [
            ("address", f"127.0.0.1:{self.port}"),
            ("user", self.user),
            ("host key", self.fingerprint),
            ("password login", "on" if self.password_login else "off (keys only)"),
            ("status", self.status),
            ("pid", self.pid),
        ]

    def __repr__(self) -> str:
        from .. import display

        return display.card_text("colabmagic sshd", self._fields())

    def _repr_html_(self) -> str:
        from .. import display

        return display.card_html("colabmagic sshd", self._fields())


# --- input checks (before anything is started or written) -------------------------------------

def check_user(user: str, password: bool = False) -> str:
    """An existing login user; a locked account only when --password will set a password."""
    if not USER_NAME.match(user or ""):
        raise BadInputError(f"not a user name: {user!r}")
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        raise BadInputError(f"no such user on this machine: {user!r}") from None
    if not password and _locked(user):
        raise BadInputError(
            f"the account {user!r} is locked (its password field starts with '!'), and sshd refuses "
            f"locked accounts even for keys: unlock it with `usermod -p '*' {user}` or use --password"
        )
    return user


def _locked(user: str) -> bool:
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == user:
                return rest.startswith("!")
    except OSError:
        pass
    return False


def check_public_key(line: str, where: str = "--key") -> str:
    """One OpenSSH public key line ``TYPE BASE64 [comment]``, with no options and no second key."""
    text = line.strip()
    if "\n" in text or "\r" in text:
        raise BadInputError(f"{where}: one key per value (found a line break; pass --key once per key)")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise BadInputError(f"{where}: the key contains control characters")
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise BadInputError(
            f"{where}: not an OpenSSH public key (expected 'TYPE BASE64 [comment]' with TYPE one of "
            f"{', '.join(KEY_TYPES[:3])}, ...)"
        )
    key_type, blob = parts[0], parts[1]
    try:
        raw = base64.b64decode(blob, validate=True)
        length = int.from_bytes(raw[:4], "big")
        embedded = raw[4:4 + length].decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise BadInputError(f"{where}: the key's base64 part is damaged") from None
    if embedded != key_type:
        raise BadInputError(f"{where}: the key says {key_type} but holds {embedded or 'something else'}")
    comment = parts[2].strip() if len(parts) > 2 else ""
    return f"{key_type} {blob}" + (f" {comment}" if comment else "")


def keys_from_text(text: str, where: str) -> List[str]:
    keys = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keys.append(check_public_key(line, where))
    return keys


def github_keys(user: str, offline: bool = False) -> List[str]:
    """The public keys GitHub publishes for ``user`` (refused in offline mode)."""
    if not GITHUB_USER.match(user or ""):
        raise BadInputError(f"--github: not a GitHub user name: {user!r}")
    if paths.offline(offline):
        raise BadInputError(
            "--github needs to fetch keys from github.com, but colabmagic is offline "
            "(COLABMAGIC_OFFLINE=1); pass the key with --key or --key-file instead"
        )
    url = f"https://github.com/{user}.keys"
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:  # noqa: S310 - fixed https URL
            text = resp.read(256 * 1024).decode("utf-8", "replace")
    except OSError as exc:
        raise BadInputError(f"--github: could not fetch {url}: {exc}") from None
    keys = keys_from_text(text, f"--github {user}")
    if not keys:
        raise BadInputError(f"--github: GitHub has no public SSH keys for {user!r}")
    return keys


def collect_keys(
    keys: Sequence[str] = (),
    key_files: Sequence[str] = (),
    github: Sequence[str] = (),
    use_secret: bool = True,
    offline: bool = False,
) -> Tuple[str, ...]:
    """Every authorized key the user gave, validated; the secret SSH_PUBLIC_KEY when none was."""
    found: List[str] = []
    for key in keys:
        found.append(check_public_key(key))
    for key_file in key_files:
        name, text = read_option_file("--key-file", key_file)
        if "PRIVATE KEY" in text:
            raise BadInputError(f"--key-file: {name} is a private key; give the public one (.pub)")
        found.extend(keys_from_text(text, f"--key-file {name}"))
    for user in github:
        found.extend(github_keys(user, offline))
    if not found and use_secret:
        secret = secrets.get(PUBLIC_KEY_SECRET, prompt=False)
        if secret:
            found.extend(keys_from_text(secret.reveal(), f"secret {PUBLIC_KEY_SECRET}"))
    return tuple(dict.fromkeys(found))


def session_environment(extra_names: Sequence[str] = (), source: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The kernel variables an SSH session should see (spec section 2)."""
    env = dict(os.environ if source is None else source)
    names = [n for n in ENV_FIXED if n in env]
    # A COLAB_*/CUDA_*... variable named like a credential is left out unless named with --env.
    names += sorted(n for n in env if n.startswith(ENV_PREFIXES) and not daemon_environment.secret_like(n))
    for name in extra_names:
        if not ENV_NAME.match(name):
            raise BadInputError(f"--env: not an environment variable name: {name!r}")
        if name not in env:
            raise BadInputError(f"--env: {name} is not set in this kernel")
        names.append(name)
    out: Dict[str, str] = {}
    for name in dict.fromkeys(names):
        value = env[name]
        if _config_safe(value):
            out[name] = value
    nvidia = environment.nvidia_lib_dir()
    if nvidia:
        parts = [p for p in out.get("LD_LIBRARY_PATH", "").split(":") if p]
        if nvidia not in parts:
            out["LD_LIBRARY_PATH"] = ":".join(parts + [nvidia])
    if "PATH" in out:
        out[PATH_CARRIER] = out["PATH"]
    return out


def _config_safe(value: str) -> bool:
    """A value sshd's config parser keeps intact inside double quotes."""
    return len(value) <= 8192 and not any(ch in value for ch in '"\\') and all(
        32 <= ord(ch) < 127 or ord(ch) > 159 for ch in value
    )


# --- files ---------------------------------------------------------------------------------------

def state_dir() -> Path:
    return paths.subdir("sshd")


def config_path() -> Path:
    return state_dir() / "sshd_config"


def authorized_keys_path() -> Path:
    """The keys the user authorized (colabmagic's own copy, kept under its home)."""
    return state_dir() / "authorized_keys"


RUNTIME_ROOT = supervisor.RUNTIME_ROOT


def served_keys_path(user: str = DEFAULT_USER) -> Path:
    """The authorized_keys file sshd reads.

    StrictModes (kept on) refuses a file below a folder others can write to.
    The default home (/var/lib/colabmagic) is fine; a home placed below /tmp
    is not, so then sshd reads a copy in a root-owned folder under /run. sshd
    reads the file as the login user, so for a user other than root the copy
    is readable by everyone (public keys are not secret) and writable by root only.
    """
    own = authorized_keys_path()
    if user == "root" and strict_modes_problem(own) is None:
        return own
    digest = hashlib.sha256(str(paths.home().resolve()).encode()).hexdigest()[:12]
    return RUNTIME_ROOT / f"sshd-{digest}" / "authorized_keys"


def sshd_binary() -> Optional[str]:
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def ensure_installed(progress: Optional[Progress] = None) -> str:
    binary = sshd_binary()
    if binary is None:
        installer.ensure_packages(["openssh-server"], progress=progress)
        binary = sshd_binary()
    if binary is None or shutil.which("ssh-keygen") is None:
        raise ServiceError("openssh-server is installed but sshd or ssh-keygen was not found")
    return binary


def strict_modes_problem(path: Path) -> Optional[str]:
    """Why sshd's StrictModes would refuse a file at ``path`` (a writable parent folder), or None."""
    current = path.resolve().parent
    while True:
        try:
            st = current.stat()
        except OSError:
            return f"cannot inspect {current}"
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{current} is writable by other users"
        if current.parent == current:
            return None
        current = current.parent


def new_ed25519_key(path: Path, comment: str, what: str) -> None:
    """Make an ed25519 key pair at ``path`` (and ``path.pub``) with ssh-keygen, private part 0600.

    ``what`` names it in the error ("a host key"); ssh-keygen comes from openssh-client.
    """
    if shutil.which("ssh-keygen") is None:
        installer.ensure_packages(["openssh-client"])
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ServiceError("ssh-keygen was not found (package openssh-client)")
    result = subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise ServiceError(f"ssh-keygen could not make {what}: {result.stderr.strip()}")
    os.chmod(path, 0o600)


def read_option_file(option: str, value: Any) -> Tuple[str, str]:
    """(name, text) of the file an option such as ``--key-file`` names, or a one-line BadInputError."""
    name = str(value)
    if name.startswith("-"):
        raise BadInputError(f"{option}: a path may not start with '-': {name!r}")
    try:
        return name, Path(name).expanduser().read_text()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise BadInputError(f"{option}: cannot read {name!r}: {getattr(exc, 'strerror', None) or exc}") from None


def host_key() -> HostKey:
    """This machine's host key for our sshd: generated once, then reused (clients pin it)."""
    path = state_dir() / "ssh_host_ed25519_key"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        for leftover in (tmp, Path(f"{tmp}.pub")):
            if leftover.exists():
                leftover.unlink()
        new_ed25519_key(tmp, "colabmagic-host", "a host key")
        os.replace(f"{tmp}.pub", f"{path}.pub")
        os.replace(tmp, path)
    text = Path(f"{path}.pub").read_text().split()
    key_type, blob = text[0], text[1]
    digest = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode().rstrip("=")
    return HostKey(path, key_type, blob, f"SHA256:{digest}")


def _choose_port(requested: Optional[int]) -> int:
    if requested is not None:
        return requested
    remembered = state_dir() / "port"
    try:
        port = int(remembered.read_text().strip())
    except (OSError, ValueError):
        port = 0
    running = supervisor.adopt(SERVICE)
    if port and running is not None and running.info.get("port") == port:
        return port
    if port and procfs_free(port):
        return port
    return probes.free_port()


def procfs_free(port: int) -> bool:
    try:
        supervisor.check_port_free(port, "colabmagic's sshd")
    except Exception:
        return False
    return True


def _quoted(path: Path, tokens: bool = False) -> str:
    """A path as one sshd_config argument (our paths may contain spaces, never quotes)."""
    text = str(path).replace("%", "%%") if tokens else str(path)  # AuthorizedKeysFile expands %-tokens
    return f'"{text}"' if any(ch.isspace() for ch in text) else text


# Sized to the 50 parallel logins of the load test (tests/faults/test_load.py) with some room, and no
# larger: every login arrives from 127.0.0.1 through the tunnel, so sshd's default (10:30:100) would
# drop an IDE's or a parallel job's burst before it authenticates; beyond 60, unauthenticated
# connections start being refused at random (30%), and none beyond 100.
MAX_STARTUPS = "60:30:100"
MAX_AUTH_TRIES = 3
LOGIN_GRACE_TIME = 30
PENALTIES_FROM = (9, 8)  # OpenSSH 9.8 added PerSourcePenalties, on by default


def parse_version(text: str) -> Optional[Tuple[int, int]]:
    """(major, minor) from OpenSSH's version banner ("OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL ...")."""
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def sshd_version(binary: str) -> Optional[Tuple[int, int]]:
    """The version of ``binary``: ``sshd -V`` (9.x and later); older ones print it in their usage text."""
    try:
        result = subprocess.run([binary, "-V"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(result.stdout + result.stderr)


def render_config(port: int, user: str, key: HostKey, password: bool, env: Dict[str, str],
                  forwarding: bool = True, version: Optional[Tuple[int, int]] = None) -> str:
    """Our sshd_config, from data: re-running with the same inputs gives the same bytes.

    ``forwarding``: TCP forwarding (``ssh -L``, for VNC and the aria2 RPC), which reaches every
    loopback daemon; root always has it, another user only when asked. ``version``: sshd's, for
    the settings only some versions know.
    """
    folder = state_dir()
    lines = [
        "# colabmagic's own sshd. Written whole by colabmagic; the system sshd is not used or changed.",
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        "AddressFamily inet",
        f"HostKey {_quoted(key.path)}",
        f"PidFile {_quoted(folder / 'sshd.pid')}",
        f"AuthorizedKeysFile {_quoted(served_keys_path(user), tokens=True)}",
        "StrictModes yes",
        f"AllowUsers {user}",
        f"PermitRootLogin {'yes' if password else 'prohibit-password'}",
        "PubkeyAuthentication yes",
        f"PasswordAuthentication {'yes' if password else 'no'}",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "UsePAM no",
        "PermitUserEnvironment no",
        f"AllowTcpForwarding {'yes' if forwarding else 'no'}",
        f"AllowStreamLocalForwarding {'yes' if forwarding else 'no'}",
        "X11Forwarding no",
        "PrintMotd no",
        "ClientAliveInterval 30",
        "ClientAliveCountMax 4",
        f"MaxStartups {MAX_STARTUPS}",
        f"MaxAuthTries {MAX_AUTH_TRIES}",
        f"LoginGraceTime {LOGIN_GRACE_TIME}",
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
    ]
    if version is not None and version >= PENALTIES_FROM:
        # Every tunnelled client, the owner included, comes from 127.0.0.1: per-source penalties would
        # let a stranger's failed logins lock the owner out. MaxAuthTries, LoginGraceTime and
        # MaxStartups bound what a stranger can do instead.
        lines.append("PerSourcePenalties no")
    if env:
        lines.append("SetEnv " + " ".join(f'"{name}={value}"' for name, value in sorted(env.items())))
    return "\n".join(lines) + "\n"


def _check_config(binary: str, path: Path) -> None:
    result = subprocess.run([binary, "-t", "-f", str(path)], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError("sshd refused its generated config (sshd -t)",
                           details=result.stderr.strip().splitlines()[-10:])


def _shadow_field(user: str) -> Optional[str]:
    """The password field of ``user`` in /etc/shadow (a hash, ``!...`` locked, ``*``, or empty)."""
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user and len(fields) > 1:
                return fields[1]
    except OSError:
        pass
    return None


def _restore_path() -> Path:
    """The account's password state from before ``--password`` (0600), to put back on stop."""
    return state_dir() / "password_restore.json"


def _chpasswd(line: str, encrypted: bool) -> None:
    """``user:password`` (or ``user:hash`` with ``encrypted``) through chpasswd's stdin, never argv."""
    chpasswd = shutil.which("chpasswd") or "/usr/sbin/chpasswd"
    result = subprocess.run([chpasswd, *(["-e"] if encrypted else [])], input=line + "\n",
                            capture_output=True, text=True)
    if result.returncode != 0:
        user = line.partition(":")[0]
        raise ServiceError(f"could not set the password of {user} (chpasswd failed)",
                           details=[out for out in result.stderr.splitlines() if out][-3:])


def _set_password(user: str) -> secrets.Secret:
    """A new password for ``user`` (one per ``--password`` start); the account's old state is kept to restore."""
    import json

    saved = _saved_password_state()
    if saved is not None and saved.get("user") != user:
        restore_password()
        saved = None
    if saved is None:
        previous = _shadow_field(user)
        if previous is None:
            raise ServiceError(f"could not read the password state of {user} from /etc/shadow")
        paths.write_file(_restore_path(), json.dumps({"user": user, "field": previous}), mode=0o600)
    password = secrets.generate_password(24)
    secrets.store(PASSWORD_SECRET, password)
    _chpasswd(f"{user}:{password.reveal()}", encrypted=False)
    return password


def password_file() -> Path:
    """Where the generated password is kept (mode 0600) while sshd runs."""
    return secrets.secret_path(PASSWORD_SECRET)


def _saved_password_state() -> Optional[Dict[str, str]]:
    import json

    try:
        data = json.loads(_restore_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("field"), str) else None


def restore_password() -> bool:
    """Put back the password state the account had before ``--password`` (run when sshd stops).

    True when something was restored. The generated password is forgotten.
    """
    saved = _saved_password_state()
    if saved is None:
        return False
    user = str(saved.get("user", ""))
    if USER_NAME.match(user) and _shadow_field(user) is not None:
        _chpasswd(f"{user}:{saved['field']}", encrypted=True)
    _restore_path().unlink()
    try:
        secrets.secret_path(PASSWORD_SECRET).unlink()
    except FileNotFoundError:
        pass
    return True


def _profile_hook() -> None:
    """Our own /etc/profile.d drop-in (see PATH_CARRIER); no existing system file is changed."""
    if PROFILE_HOOK.parent.is_dir() and os.access(PROFILE_HOOK.parent, os.W_OK):
        paths.write_file(PROFILE_HOOK, PROFILE_HOOK_TEXT, mode=0o644, durable=False)


def _value(service: supervisor.Service, key: HostKey, reused: bool = False) -> Sshd:
    info = service.info
    return Sshd(
        port=int(info.get("port", 0)),
        user=str(info.get("user", DEFAULT_USER)),
        pid=service.pid,
        status=service.status,
        fingerprint=key.fingerprint,
        known_hosts_line=key.known_hosts_line(key.alias),
        host_key_alias=key.alias,
        config_path=str(config_path()),
        password_login=bool(info.get("password_login")),
        reused=reused,
    )


def ensure(config: SshdConfig, progress: Optional[Progress] = None) -> Sshd:
    """Run (or reuse) colabmagic's sshd for ``config``; ``.password`` is set only with ``config.password``.

    Inputs are expected to be checked already (``check_user``, ``collect_keys``).
    """
    return begin(config, progress).wait()


@dataclass
class PendingSshd:
    """colabmagic's sshd on its way up (``begin``): its port is known; ``wait()`` gives the Sshd."""

    port: int
    launch: supervisor.Launch
    key: HostKey
    password: Optional[secrets.Secret] = field(default=None, repr=False)

    def wait(self, timeout: float = 30.0) -> Sshd:
        service = self.launch.wait(timeout)
        return replace(_value(service, self.key, reused=service.reused), password=self.password)

    def abort(self) -> None:
        self.launch.abort()


def begin(config: SshdConfig, progress: Optional[Progress] = None,
          on_port: Optional[Callable[[int], Any]] = None) -> PendingSshd:
    """Everything ``ensure`` does, up to starting sshd, without waiting for it to answer.

    ``on_port(port)`` is called as soon as the port is known and free and the inputs are checked,
    before the host key is made (a new one takes ssh-keygen's time) and the config is written and
    checked: what needs only the port (a tunnel agent) starts alongside. The key is ``.key`` of the
    result.
    """
    if os.geteuid() != 0:
        raise NotRootError("colabmagic's sshd needs root (it logs users in)")
    env = session_environment(config.env_names)
    binary = ensure_installed(progress)
    keys_file = authorized_keys_path()
    if not config.keys and not config.password:
        existing = keys_file.read_text() if keys_file.exists() else ""
        if not existing.strip():
            raise BadInputError(
                "no key to authorize: pass --key 'ssh-ed25519 AAAA...', --key-file ~/.ssh/id_ed25519.pub, "
                f"--github USER, or set the secret {PUBLIC_KEY_SECRET}; or opt into --password"
            )
    port = _choose_port(config.port)
    running = supervisor.adopt(SERVICE)
    if running is None or running.info.get("port") != port:
        supervisor.check_port_free(port, "colabmagic's sshd")
    if on_port is not None:
        on_port(port)
    key = host_key()
    forwarding = config.user == "root" or config.allow_forwarding
    text = render_config(port, config.user, key, config.password, env, forwarding, sshd_version(binary))
    if config.keys:
        paths.write_file(keys_file, "".join(k + "\n" for k in config.keys), mode=0o600)
    elif not keys_file.exists():
        paths.write_file(keys_file, "", mode=0o600)
    served = served_keys_path(config.user)
    if served != keys_file:
        private = config.user == "root"
        for folder in (served.parent.parent, served.parent):
            folder.mkdir(exist_ok=True)
            os.chmod(folder, 0o700 if private else 0o755)
        paths.write_file(served, keys_file.read_bytes(), mode=0o600 if private else 0o644, durable=False)
        problem = strict_modes_problem(served)
        if problem:
            raise ServiceError(f"no folder sshd's StrictModes accepts for authorized_keys: {problem}")
    path = config_path()
    # Written afresh on every start (not durable: see paths.write_file).
    paths.write_file(path, text, mode=0o600, durable=False)
    paths.write_file(state_dir() / "port", f"{port}\n", mode=0o600, durable=False)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    _check_config(binary, path)
    _profile_hook()
    spec = supervisor.ServiceSpec(
        name=SERVICE,
        argv=[binary, "-D", "-e", "-f", str(path)],
        restart=True,
        backoff_max=5.0,
        info={
            "group": GROUP,
            "address": f"127.0.0.1:{port}",
            "port": port,
            "user": config.user,
            "password_login": config.password,
            "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "host_key": key.fingerprint,
            # The served copy of authorized_keys (when not under our home) goes when sshd stops.
            "runtime_dirs": [str(served.parent)] if served != keys_file else [],
            # However sshd is stopped, the account gets back the password state it had before.
            "on_stop": f"{__name__}:restore_password",
        },
    )
    launch = supervisor.launch(spec, ready=lambda: probes.banner(port, b"SSH-"))
    # After the launch: replacing a running sshd (its stop restores the old state) comes first.
    try:
        password = _set_password(config.user) if config.password else None
        if not config.password:
            restore_password()
    except ServiceError:
        launch.abort()
        raise
    return PendingSshd(port=port, launch=launch, key=key, password=password)


def current() -> Optional[Sshd]:
    """``_colabmagic.sshd``: our running sshd, or None."""
    service = supervisor.adopt(SERVICE)
    if service is None or not (state_dir() / "ssh_host_ed25519_key.pub").exists():
        return None
    try:
        key = host_key()
    except (OSError, ServiceError):
        return None
    return _value(service, key)


def stop() -> bool:
    """Stop colabmagic's sshd (its authorized_keys copy under /run goes with it: ``runtime_dirs``)."""
    service = supervisor.adopt(SERVICE)
    return bool(service and service.stop())
