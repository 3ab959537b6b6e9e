"""Find a tunnel provider's agent binary, or fetch it from the provider's official release.

The path is a setting (``%config TunnelMagics.frpc_path = ...``, passed in as
``TunnelConfig.binary``). Without one, colabmagic looks in
``$COLABMAGIC_HOME/bin`` and on PATH, and only then downloads the binary from
the provider's official GitHub release (frp, cloudflared; checked against the
published SHA-256) or ngrok's own download site through pyngrok. Offline
(``COLABMAGIC_OFFLINE``) or without internet it never downloads: the error
names the setting and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

from ...errors import ColabMagicError
from ...system import paths

DOWNLOAD_TIMEOUT = 60.0


class MissingBinaryError(ColabMagicError):
    """A provider binary is not installed and cannot be fetched here."""


@dataclass(frozen=True)
class Agent:
    """One provider binary: its command name, the setting holding its path, where it comes from."""

    command: str
    setting: str
    project: str  # where the user gets it by hand


AGENTS: Dict[str, Agent] = {
    "frpc": Agent("frpc", "TunnelMagics.frpc_path", "https://github.com/fatedier/frp/releases"),
    "cloudflared": Agent(
        "cloudflared", "TunnelMagics.cloudflared_path", "https://github.com/cloudflare/cloudflared/releases"
    ),
    "ngrok": Agent("ngrok", "TunnelMagics.ngrok_path", "https://ngrok.com/download"),
}


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


def _missing(agent: Agent, why: str) -> MissingBinaryError:
    return MissingBinaryError(
        f"{agent.command} is not installed and {why}. Install it (from {agent.project}) and set "
        f"%config {agent.setting} = '/path/to/{agent.command}'"
    )


def resolve(command: str, setting: Optional[str] = None, progress: Optional[Callable[[float, str], None]] = None) -> str:
    """The absolute path of ``command`` ("frpc", "cloudflared" or "ngrok"), downloading it if allowed.

    ``setting`` is the user's path setting: an absolute path is used as-is
    (and must be an executable), a bare name is looked up on PATH.
    """
    found = check(command, setting)
    if found is not None:
        return found
    local = bin_dir() / command
    try:
        return str(_DOWNLOADERS[command](local, progress))
    except MissingBinaryError:
        raise
    except (OSError, urllib.error.URLError, ValueError, tarfile.TarError) as exc:
        raise _missing(AGENTS[command], f"could not be downloaded ({exc})") from exc


def check(command: str, setting: Optional[str] = None) -> Optional[str]:
    """Like ``resolve`` but never downloads or writes: the path, None if a download would be tried,
    or MissingBinaryError (a bad setting, or missing while offline) before anything is started."""
    agent = AGENTS[command]
    if setting:
        candidate = Path(setting).expanduser()
        if os.sep in setting:
            if _executable(candidate):
                return str(candidate.resolve())
            raise MissingBinaryError(
                f"{agent.setting} is {setting!r}, which is not an executable file; "
                f"fix it with %config {agent.setting} = '/path/to/{agent.command}'"
            )
        found = shutil.which(setting)
        if found:
            return str(Path(found).resolve())
        raise MissingBinaryError(
            f"{agent.setting} is {setting!r}, which is not on PATH; "
            f"set it to a full path with %config {agent.setting} = '/path/to/{agent.command}'"
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
    if paths.offline():
        raise _missing(agent, "colabmagic is offline (COLABMAGIC_OFFLINE is set), so it is not downloaded")
    return None


# --- downloads -------------------------------------------------------------------------

def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "colabmagic", "Accept": "*/*"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as resp:  # noqa: S310 - fixed https URLs
        return bytes(resp.read())


def _latest_release(repo: str) -> dict:
    data = json.loads(_get(f"https://api.github.com/repos/{repo}/releases/latest"))
    if not isinstance(data, dict) or "assets" not in data:
        raise ValueError(f"unexpected answer from GitHub for {repo}")
    return data


def _asset(release: dict, name: str) -> dict:
    for asset in release.get("assets", []):
        if asset.get("name") == name:
            return dict(asset)
    raise ValueError(f"release {release.get('tag_name')} has no asset {name}")


def _verify(data: bytes, expected: Optional[str], what: str) -> None:
    if not expected:
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual.lower() != expected.lower():
        raise ValueError(f"checksum mismatch for {what}: expected {expected}, got {actual}")


def _install(target: Path, data: bytes) -> Path:
    paths.write_file(target, data, mode=0o755)
    return target


def _asset_sha256(release: dict, asset: dict) -> Optional[str]:
    """GitHub's own digest of the asset, or the line for it in the release notes (cloudflared's habit)."""
    digest = str(asset.get("digest") or "")
    if digest.startswith("sha256:"):
        return digest.split(":", 1)[1]
    match = re.search(rf"{re.escape(str(asset.get('name')))}\s*:\s*([0-9a-fA-F]{{64}})", str(release.get("body") or ""))
    return match.group(1) if match else None


def _download_cloudflared(target: Path, progress: Optional[Callable[[float, str], None]]) -> Path:
    release = _latest_release("cloudflare/cloudflared")
    asset = _asset(release, f"cloudflared-linux-{_arch()}")
    if progress:
        progress(0.1, f"downloading cloudflared {release.get('tag_name')}")
    data = _get(str(asset["browser_download_url"]))
    _verify(data, _asset_sha256(release, asset), asset["name"])
    if progress:
        progress(1.0, "cloudflared installed")
    return _install(target, data)


def _download_frpc(target: Path, progress: Optional[Callable[[float, str], None]]) -> Path:
    release = _latest_release("fatedier/frp")
    version = str(release.get("tag_name", "")).lstrip("v")
    name = f"frp_{version}_linux_{_arch()}.tar.gz"
    asset = _asset(release, name)
    expected: Optional[str] = None
    try:
        sums = _get(str(_asset(release, "frp_sha256_checksums.txt")["browser_download_url"])).decode()
        for line in sums.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == name:
                expected = parts[0]
    except ValueError:
        expected = _asset_sha256(release, asset)
    if progress:
        progress(0.1, f"downloading frp {version}")
    data = _get(str(asset["browser_download_url"]))
    _verify(data, expected or _asset_sha256(release, asset), name)
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

    if progress:
        progress(0.1, "downloading ngrok (ngrok's official download, through pyngrok)")
    try:
        installer.install_ngrok(str(target), ngrok_version="3")
    except PyngrokError as exc:
        raise OSError(str(exc)) from exc
    os.chmod(target, 0o755)
    if progress:
        progress(1.0, "ngrok installed")
    return target


_DOWNLOADERS: Dict[str, Callable[[Path, Optional[Callable[[float, str], None]]], Path]] = {
    "frpc": _download_frpc,
    "cloudflared": _download_cloudflared,
    "ngrok": _download_ngrok,
}
