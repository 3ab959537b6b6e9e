"""Find a tunnel provider's agent binary, or fetch it from the provider's official release.

The path is a setting (``%config TunnelMagics.frpc_path = ...``, passed in as
``TunnelConfig.binary``). Without one, colabmagic looks in
``$COLABMAGIC_HOME/bin`` and on PATH, and only then downloads the binary from
the provider's official GitHub release (frp, cloudflared) at the version pinned in
``PINS``, checked against the sha256 pinned there for this machine's architecture;
a platform with no pinned sha256, or a download that does not match, is refused.
ngrok comes from ngrok's own download site through pyngrok and is checked the
same way (no pin is published for it, so it is refused: set ``ngrok_path``). Offline
(``COLABMAGIC_OFFLINE``) or without internet it never downloads: the error
names the setting and says what to do.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Tuple

from ...errors import ColabMagicError
from ...system import paths
from ..tunnel_registry import AGENTS, AgentBinary

DOWNLOAD_TIMEOUT = 60.0


class MissingBinaryError(ColabMagicError):
    """A provider binary is not installed and cannot be fetched here."""


def bin_dir() -> Path:
    return paths.subdir("bin")


def _arch() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "amd64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    if machine.startswith("arm"):
        return "arm"
    return machine


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _missing(agent: AgentBinary, why: str) -> MissingBinaryError:
    return MissingBinaryError(
        f"{agent.command} is not installed and {why}. Install it (from {agent.project}) and set "
        f"%config {agent.config_name} = '/path/to/{agent.command}'"
    )


def resolve(command: str, setting: Optional[str] = None, progress: Optional[Callable[[float, str], None]] = None,
            offline: bool = False) -> str:
    """The absolute path of ``command`` ("frpc", "cloudflared" or "ngrok"), downloading it if allowed.

    ``setting`` is the user's path setting: an absolute path is used as-is
    (and must be an executable), a bare name is looked up on PATH.
    """
    found = check(command, setting, offline)
    if found is not None:
        return found
    local = bin_dir() / command
    try:
        return str(_DOWNLOADERS[command](local, progress))
    except MissingBinaryError:
        raise
    except (OSError, urllib.error.URLError, ValueError, tarfile.TarError) as exc:
        raise _missing(AGENTS[command], f"could not be downloaded ({exc})") from exc


def check(command: str, setting: Optional[str] = None, offline: bool = False) -> Optional[str]:
    """Like ``resolve`` but never downloads or writes: the path, None if a download would be tried,
    or MissingBinaryError (a bad setting, or missing while offline) before anything is started."""
    agent = AGENTS[command]
    name = agent.config_name
    if setting:
        candidate = Path(setting).expanduser()
        if os.sep in setting:
            if _executable(candidate):
                return str(candidate.resolve())
            raise MissingBinaryError(
                f"{name} is {setting!r}, which is not an executable file; "
                f"fix it with %config {name} = '/path/to/{agent.command}'"
            )
        found = shutil.which(setting)
        if found:
            return str(Path(found).resolve())
        raise MissingBinaryError(
            f"{name} is {setting!r}, which is not on PATH; "
            f"set it to a full path with %config {name} = '/path/to/{agent.command}'"
        )
    local = paths.home() / "bin" / command
    if _executable(local):
        return str(local)
    found = shutil.which(command)
    if found:
        return str(Path(found).resolve())
    if command == "ngrok":  # where pyngrok installs it by default, if it did before
        from pyngrok import conf

        if _executable(Path(conf.DEFAULT_NGROK_PATH)):
            return conf.DEFAULT_NGROK_PATH
    if paths.offline(offline):
        raise _missing(agent, "colabmagic is offline (COLABMAGIC_OFFLINE or the offline setting), so it is not downloaded")
    return None


# --- downloads -------------------------------------------------------------------------

@dataclass(frozen=True)
class Pin:
    """One provider release colabmagic may download: its version, URL and sha256 per architecture.

    A platform without a checksum here is not downloaded at all (fail closed): the user
    installs the binary and sets its ``*_path`` setting.
    """

    version: str
    url: str  # with {version} and {arch}
    sha256: Mapping[str, str]
    source: str  # where the checksums were published


PINS: Dict[str, Pin] = {
    # frp v0.69.0, from frp_sha256_checksums.txt of https://github.com/fatedier/frp/releases/tag/v0.69.0
    # (GitHub itself was not reachable here: read as quoted by several independent public files that
    # pin frp 0.69.0, a Yocto recipe, install scripts and a Dockerfile, which agree)
    "frpc": Pin(
        "0.69.0",
        "https://github.com/fatedier/frp/releases/download/v{version}/frp_{version}_linux_{arch}.tar.gz",
        {"amd64": "6b90d1cd28fc661f170c0de90dde03d2c63e4fd7ce0ae2da2ca1c28014b8146e",
         "arm64": "24a4fc82b4c041835103419685ea124c4d6a7dbf83d0425481c5831b4ce4b3a4"},
        "https://github.com/fatedier/frp/releases/tag/v0.69.0 (frp_sha256_checksums.txt)",
    ),
    # cloudflared 2026.9.3, from the "SHA256 Checksums" block of its release notes (read here as
    # quoted by several independent public files that pin 2026.9.3, one of them checked against
    # GitHub's asset digest, which agree; GitHub itself was not reachable here)
    "cloudflared": Pin(
        "2026.9.3",
        "https://github.com/cloudflare/cloudflared/releases/download/{version}/cloudflared-linux-{arch}",
        {"amd64": "77e26d8d900e0b8469f416239d14b5f296525fdf79fee6f511ef55609e3fbac2",
         "arm64": "aaeb2d7d0da3614634c7e03ab13487a1522c2e79165ed2929cfe23d5e95b326d"},
        "https://github.com/cloudflare/cloudflared/releases/tag/2026.9.3 (release notes)",
    ),
    # ngrok: pyngrok fetches ngrok's unversioned "v3-stable" archive, for which ngrok publishes no
    # checksum, so nothing is pinned and the download is refused until one is (or ngrok_path is set).
    "ngrok": Pin("3", "", {}, "none published for ngrok's v3-stable download"),
}


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "colabmagic", "Accept": "*/*"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as resp:  # noqa: S310 - pinned URLs
        return bytes(resp.read())


def pinned(command: str) -> Tuple[Pin, str]:
    """The pin for ``command`` and this machine's sha256, or MissingBinaryError (no pin: no download)."""
    pin, arch = PINS[command], _arch()
    expected = pin.sha256.get(arch)
    if not expected:
        agent = AGENTS[command]
        raise MissingBinaryError(
            f"{command} is not installed and colabmagic has no pinned sha256 for {command} {pin.version} on "
            f"linux-{arch}, so it does not download it; install it (from {agent.project}) and set "
            f"%config {agent.config_name} = '/path/to/{command}'"
        )
    return pin, expected


def _verify(data: bytes, expected: str, what: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if not expected or actual.lower() != expected.lower():
        raise ValueError(f"checksum mismatch for {what}: expected {expected or '(none pinned)'}, got {actual}; "
                         "refused")


def _install(target: Path, data: bytes) -> Path:
    paths.write_file(target, data, mode=0o755)
    return target


def _fetch(command: str, progress: Optional[Callable[[float, str], None]]) -> Tuple[bytes, str]:
    pin, expected = pinned(command)
    url = pin.url.format(version=pin.version, arch=_arch())
    name = url.rsplit("/", 1)[-1]
    if progress:
        progress(0.1, f"downloading {command} {pin.version}")
    data = _get(url)
    _verify(data, expected, name)
    return data, name


def _download_cloudflared(target: Path, progress: Optional[Callable[[float, str], None]]) -> Path:
    data, _name = _fetch("cloudflared", progress)
    if progress:
        progress(1.0, "cloudflared installed")
    return _install(target, data)


def _download_frpc(target: Path, progress: Optional[Callable[[float, str], None]]) -> Path:
    data, name = _fetch("frpc", progress)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / name
        archive.write_bytes(data)
        with tarfile.open(archive, "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.isfile() and m.name.endswith("/frpc")), None)
            if member is None:
                raise ValueError(f"{name} holds no frpc")
            extracted = tar.extractfile(member)
            if extracted is None:
                raise ValueError(f"{name}: cannot read frpc")
            binary = extracted.read()
    if progress:
        progress(1.0, "frpc installed")
    return _install(target, binary)


def _download_ngrok(target: Path, progress: Optional[Callable[[float, str], None]]) -> Path:
    from pyngrok import installer
    from pyngrok.exception import PyngrokError

    _pin, expected = pinned("ngrok")  # no pin: refused before pyngrok downloads anything
    if progress:
        progress(0.1, "downloading ngrok (ngrok's official download, through pyngrok)")
    with tempfile.TemporaryDirectory(dir=str(target.parent)) as tmp:
        staged = Path(tmp) / "ngrok"
        try:
            installer.install_ngrok(str(staged), ngrok_version="3")
        except PyngrokError as exc:
            raise OSError(str(exc)) from exc
        _verify(staged.read_bytes(), expected, "ngrok (as installed by pyngrok)")
        _install(target, staged.read_bytes())
    os.chmod(target, 0o755)
    if progress:
        progress(1.0, "ngrok installed")
    return target


_DOWNLOADERS: Dict[str, Callable[[Path, Optional[Callable[[float, str], None]]], Path]] = {
    "frpc": _download_frpc,
    "cloudflared": _download_cloudflared,
    "ngrok": _download_ngrok,
}
