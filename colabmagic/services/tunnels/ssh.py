"""The ``ssh`` provider: a reverse tunnel (``ssh -N -R``) to any SSH server the user trusts.

The relay's host key is pinned in a known_hosts file of ours and checked
with StrictHostKeyChecking=yes; it is never accepted blindly. The VM logs in
with a key file the user names, the secret RELAY_SSH_KEY, or a key
colabmagic generates once (its public half is shown for the user to
authorize on the relay). ExitOnForwardFailure and keepalives make a broken
link end the agent, so the supervisor restarts it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ...errors import BadInputError, ServiceError, log_tail
from ...system import installer, paths, secrets, supervisor
from ..sshd import new_ed25519_key, read_option_file
from .base import Provider, PublicAddress, TunnelConfig

KEY_SECRET = "RELAY_SSH_KEY"
RELAY = re.compile(
    r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]{0,31})@)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
HOST_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
)
BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
# Fast AEAD ciphers first (AES-GCM uses AES-NI); no compression: the payload is often already compressed.
CIPHERS = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-ctr"
# The relay hop's key exchange when the tunnel carries colabmagic's sshd. OpenSSH 9's default,
# the post-quantum hybrid sntrup761x25519 (mlkem768x25519 from 10.0), costs the agent about 0.1 s
# of CPU per connection here (measured: forward ready 297 ms -> 161 ms, medians of 10 on a busy
# machine), on the path a user waits on before the first login and after every reconnect. What
# crosses that hop is the user's own SSH session, which negotiates its own key exchange with our
# sshd end to end (post-quantum where both ends have it), so the hop's exchange guards no
# plaintext. Every other tunnel keeps OpenSSH's defaults: there the hop is the only encryption.
# Classic names every OpenSSH since 7.4 knows (no "^"/"+" list syntax, which older clients refuse).
END_TO_END_KEX = ("curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
                  "ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
                  "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256")
ALLOCATED = "Allocated port {port} for remote forward to {target}"
MARK = "[colabmagic "


def folder() -> Path:
    path = paths.subdir("tunnels") / "ssh"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def parse_relay(relay: Any) -> Tuple[str, str, int]:
    """``[user@]host[:port]`` -> (user, host, port); anything else is refused."""
    text = str(relay or "").strip()
    if not text:
        raise BadInputError("the ssh provider needs --relay [user@]host[:port] (your SSH server)")
    match = RELAY.match(text)
    if not match or text.startswith("-"):
        raise BadInputError(f"--relay: not [user@]host[:port]: {text!r}")
    port = int(match.group("port") or 22)
    if not 1 <= port <= 65535:
        raise BadInputError(f"--relay: port must be from 1 to 65535, not {port}")
    return match.group("user") or "root", match.group("host").strip("[]"), port


def check_host_key(text: Any) -> Tuple[str, str]:
    parts = str(text or "").strip().split()
    if "\n" in str(text).strip() or len(parts) not in (2, 3) or parts[0] not in HOST_KEY_TYPES \
            or not BASE64.match(parts[1]):
        raise BadInputError(
            "--relay-host-key: expected 'TYPE BASE64' as printed by `ssh-keyscan HOST` "
            "(for example 'ssh-ed25519 AAAAC3Nz...')"
        )
    return parts[0], parts[1]


def check_known_hosts(path: Any) -> str:
    name, text = read_option_file("--relay-known-hosts", path)
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if parts[0].startswith("@"):
            parts = parts[1:]
        if len(parts) < 3 or parts[1] not in HOST_KEY_TYPES or not BASE64.match(parts[2]):
            raise BadInputError(f"--relay-known-hosts: {name} has a line that is not a known_hosts entry")
        lines.append(line)
    if not lines:
        raise BadInputError(f"--relay-known-hosts: {name} holds no host key")
    return "".join(line + "\n" for line in lines)


def check_key_file(path: Any) -> str:
    name, text = read_option_file("--relay-key-file", path)
    if "PRIVATE KEY" not in text:
        raise BadInputError(f"--relay-key-file: {name} is not a private key file")
    return text if text.endswith("\n") else text + "\n"


def _remote_port(config: TunnelConfig) -> Optional[int]:
    value = config.options.get("remote_port")
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise BadInputError(f"--remote-port must be from 1 to 65535, not {value!r}")
    return int(text)


def generated_key() -> Tuple[Path, str]:
    """colabmagic's own login key for relays (made once); returns (private path, public line)."""
    path = folder() / "id_ed25519"
    if not path.exists():
        new_ed25519_key(path, "colabmagic-relay", "colabmagic's relay login key")
    return path, Path(f"{path}.pub").read_text().strip()


def sentinel(config: TunnelConfig) -> Path:
    """A Unix socket path that never exists, target of a second, relay-allocated forward.

    The relay answers forward requests in order and ssh logs an allocated port
    at its quiet VERBOSE level, so that line proves the real forward before it
    was accepted (a refused one ends ssh: ExitOnForwardFailure). Connections to
    the extra port on the relay's side fail: nothing listens at this path.
    """
    return folder() / f"{config.name}.ready-probe"


# Older OpenSSH (Debian 11's 8.4) logs a Unix-socket target as its empty host and port:
# "to (null):-2" (clientloop.c prints connect_host:connect_port; -2 is PORT_STREAMLOCAL). Our
# only Unix-socket forward is the sentinel, so that line names it as surely as the path does.
STREAMLOCAL_TARGET = "(null):-2"


def _ready_pattern(config: TunnelConfig) -> re.Pattern:
    targets = [re.escape(ALLOCATED.format(port="PORT", target=t)).replace("PORT", r"\d+")
               for t in (str(sentinel(config)), STREAMLOCAL_TARGET)]
    return re.compile("|".join(targets))


def _allocated(config: TunnelConfig, text: str) -> Optional[int]:
    pattern = re.escape(ALLOCATED.format(port="PORT", target=f"127.0.0.1:{config.local_port}"))
    found = re.findall(pattern.replace("PORT", r"(\d+)") + r"(?!\d)", text)
    return int(found[-1]) if found else None


def _quoted(path: Path) -> str:
    """A path as one ssh config argument (our paths may contain spaces, never quotes)."""
    text = str(path)
    return f'"{text}"' if any(ch.isspace() for ch in text) else text


def _current_run(log: Path) -> str:
    """The agent's output since the keeper last (re)started it."""
    text = "\n".join(log_tail(log, 400))
    cut = text.rfind(MARK)
    if cut >= 0:
        end = text.find("\n", cut)
        text = text[end + 1:] if end >= 0 else ""
    return text


class SshProvider(Provider):
    name = "ssh"

    def validate(self, config: TunnelConfig) -> None:
        parse_relay(config.options.get("relay"))
        _remote_port(config)
        host_key = config.options.get("relay_host_key")
        known = config.options.get("relay_known_hosts")
        if host_key and known:
            raise BadInputError("give either --relay-host-key or --relay-known-hosts, not both")
        if host_key:
            check_host_key(host_key)
        elif known:
            check_known_hosts(known)
        else:
            raise BadInputError(
                "the relay's host key must be pinned: --relay-host-key 'TYPE BASE64' or "
                "--relay-known-hosts FILE (from `ssh-keyscan -p PORT HOST` run where you trust the network)"
            )
        if config.options.get("relay_key_file"):
            check_key_file(config.options["relay_key_file"])

    def _known_hosts(self, config: TunnelConfig, host: str, port: int) -> Path:
        path = folder() / f"{config.name}.known_hosts"
        if config.options.get("relay_host_key"):
            key_type, blob = check_host_key(config.options["relay_host_key"])
            pattern = host if port == 22 else f"[{host}]:{port}"
            text = f"{pattern} {key_type} {blob}\n"
        else:
            text = check_known_hosts(config.options["relay_known_hosts"])
        paths.write_file(path, text, mode=0o600, durable=False)  # from the options, on every start
        return path

    def _login_key(self, config: TunnelConfig) -> Tuple[Path, Optional[str]]:
        """The private key file to log in with, and the public line when colabmagic generated it."""
        if config.options.get("relay_key_file"):
            path = folder() / f"{config.name}.key"
            paths.write_file(path, check_key_file(config.options["relay_key_file"]), mode=0o600, durable=False)
            return path, None
        secret = secrets.get(KEY_SECRET, prompt=False)
        if secret:
            value = secret.reveal()
            return secrets.store(KEY_SECRET, value if value.endswith("\n") else value + "\n"), None
        path, public = generated_key()
        return path, public

    def spec(self, config: TunnelConfig) -> supervisor.ServiceSpec:
        self.validate(config)
        user, host, port = parse_relay(config.options.get("relay"))
        remote = _remote_port(config)
        known_hosts = self._known_hosts(config, host, port)
        key, public = self._login_key(config)
        ssh = shutil.which("ssh")
        if ssh is None:
            installer.ensure_packages(["openssh-client"])
            ssh = shutil.which("ssh")
        if ssh is None:
            raise ServiceError("the ssh client was not found (package openssh-client)")
        argv = [
            ssh, "-N", "-F", "/dev/null",
            "-o", "LogLevel=VERBOSE",
            "-o", "BatchMode=yes",
            "-o", "ExitOnForwardFailure=yes",
            "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=3",
            "-o", "ConnectTimeout=15",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={_quoted(known_hosts)}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no",
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", f"IdentityFile={_quoted(key)}",
            "-o", f"Ciphers={CIPHERS}",
            *(["-o", f"KexAlgorithms={END_TO_END_KEX}"] if config.end_to_end else []),
            "-o", "Compression=no",
            "-o", "IPQoS=throughput",
            "-o", "ControlMaster=no",
            "-o", "ControlPath=none",
            "-R", f"{remote or 0}:127.0.0.1:{config.local_port}",
            "-R", f"0:{sentinel(config)}",
            "-p", str(port), "-l", user,
            "--", host,
        ]
        info: Dict[str, Any] = {"relay": f"{user}@{host}:{port}"}
        if public:
            info["relay_login_key"] = public
        return supervisor.ServiceSpec(name=f"tunnel-{config.name}", argv=argv, backoff_max=4.0,
                                      stop_timeout=5.0, info=info)

    def ready(self, config: TunnelConfig, service: supervisor.Service) -> bool:
        return service.pid is not None and bool(_ready_pattern(config).search(_current_run(service.log)))

    def address(self, config: TunnelConfig, service: supervisor.Service) -> PublicAddress:
        _user, host, _port = parse_relay(config.options.get("relay"))
        remote = _remote_port(config)
        if remote is None:
            remote = _allocated(config, _current_run(service.log))
        if remote is None:
            return PublicAddress()
        url = f"http://{host}:{remote}/" if config.proto == "http" else None
        return PublicAddress(host=host, port=remote, url=url)

    def health(self, service: supervisor.Service) -> str:
        status = service.status
        if status == "running" and "Allocated port" not in _current_run(service.log):
            return "connecting"
        return status

    def explain(self, config: TunnelConfig, error: ServiceError) -> ServiceError:
        text = "\n".join(error.details)
        relay = config.options.get("relay")
        if "Host key verification failed" in text or "HOST IDENTIFICATION HAS CHANGED" in text \
                or "No ED25519 host key is known" in text or "host key is known" in text:
            message = (f"the relay {relay} did not show the pinned host key; refused to connect "
                       "(StrictHostKeyChecking). Check --relay-host-key / --relay-known-hosts")
        elif "Permission denied" in text:
            message = f"the relay {relay} refused our login key"
            if not config.options.get("relay_key_file") and not secrets.get(KEY_SECRET, prompt=False):
                message += "; add this line to ~/.ssh/authorized_keys on the relay: " + generated_key()[1]
        elif "remote port forwarding failed" in text or "forwarding failed" in text:
            message = (f"the relay {relay} would not open port {config.options.get('remote_port')} "
                       "(in use there, or forwarding disabled by AllowTcpForwarding)")
        elif "Connection refused" in text or "Could not resolve" in text or "timed out" in text:
            message = f"cannot reach the relay {relay}"
        else:
            return error
        return ServiceError(message, log=error.log, details=error.details[-6:])


PROVIDER = SshProvider()
