"""Machine-wide views and actions: the doctor report, stopping services by name or group, logs."""

from __future__ import annotations

import platform
from typing import List, Optional

from .. import display
from ..errors import BadInputError
from ..system import environment, paths, supervisor
from .records import Listing


def doctor(offline: bool = False) -> display.Table:
    """Can colabmagic work here? Root or sudo, apt, disk, GPU, platform, distribution, versions."""
    rows = []
    if environment.is_root():
        rows.append(["privileges", "ok", "running as root"])
    elif environment.can_sudo():
        rows.append(["privileges", "ok", "passwordless sudo available"])
    else:
        rows.append(["privileges", "problem", "not root and no passwordless sudo: installs will fail"])
    if paths.offline(offline):
        rows.append(["package manager", "skipped", "offline mode: apt archives not contacted"])
    else:
        reach = environment.apt_reachable()
        if reach is None:
            rows.append(["package manager", "problem", "no apt-get or no apt sources on this machine"])
        else:
            hosts = ", ".join(environment.apt_sources()[:2])
            rows.append(["package manager", "ok" if reach else "problem",
                         f"{hosts} {'reachable' if reach else 'unreachable'}"])
    free = environment.free_disk("/")
    rows.append(["free disk", "ok" if free > 5 * 2**30 else "low", f"{display.human_bytes(free)} free on /"])
    home_free = environment.free_disk(str(paths.home()))
    rows.append(["state folder", "ok", f"{paths.home()} ({display.human_bytes(home_free)} free)"])
    gpus = environment.gpus()
    if gpus:
        libs = gpus[0].driver_libs or "driver libraries not found"
        rows.append(["GPU", "ok", "; ".join(g.name for g in gpus) + f" (libraries: {libs})"])
    else:
        rows.append(["GPU", "none", "no NVIDIA GPU visible (CPU only)"])
    rows.append(["platform", "ok", environment.platform_name()])
    rows.append(["distribution", "ok", environment.distribution()])
    rows.append(["Python", "ok", f"{platform.python_implementation()} {platform.python_version()}"])
    rows.append(["IPython", "ok", _ipython_version()])
    for tool, version in environment.tool_versions().items():
        rows.append([tool, "ok" if version else "not installed",
                     version or "installed on first use"])
    if environment.is_hosted_colab():
        rows.append(["Colab terms", "notice", environment.COLAB_TERMS])
        rows.append(["Google's remote access", "notice", environment.COLAB_OWN_REMOTE_ACCESS])
    rows.append(["offline mode", "on" if paths.offline(offline) else "off",
                 "COLABMAGIC_OFFLINE=1: no outside contact" if paths.offline(offline) else "outside contact allowed"])
    return display.Table(["check", "result", "details"], rows, title="colabmagic doctor")


def _ipython_version() -> str:
    try:
        import IPython
    except ImportError:
        return "not installed"
    return str(IPython.__version__)


def _ordered(services: List[supervisor.Service]) -> List[supervisor.Service]:
    """Newest first, so composite services stop in reverse order of start."""
    return sorted(services, key=lambda s: s.started_at, reverse=True)


def stop(name: str = "", all_services: bool = False) -> List[str]:
    """Stop one service, a group (every service whose info names it as ``group``), or all."""
    running = supervisor.running()
    if all_services:
        targets = running
    else:
        groups = {s.name: Listing.of(s).group for s in running}
        targets = [s for s in running if name and name in (s.name, groups[s.name])]
        if not targets:
            known = ", ".join(sorted({s.name for s in running} | {g for g in groups.values() if g}))
            raise BadInputError(f"no running service named {name!r}" + (f" (running: {known})" if known else " (nothing is running)"))
    stopped = []
    for svc in _ordered(targets):
        svc.stop()
        stopped.append(svc.name)
    return stopped


def logs(name: str, lines: int = 40) -> str:
    if not name or "/" in name or "\0" in name or name.startswith(".") or len(name) > 100:
        raise BadInputError(f"not a service name: {name[:100]!r}")
    path = supervisor.log_path(name)
    if not path.exists():
        raise BadInputError(f"no log for {name!r} in {path.parent}")
    from ..errors import log_tail

    return "\n".join(log_tail(path, lines))


def announce_new_tunnel_addresses() -> None:
    """Print any tunnel whose restarted agent got a new public address (run after each cell).

    Cheap when no tunnel was ever started here: the tunnel services are not even imported.
    """
    if not any(supervisor.services_dir().glob("tunnel-*.json")):
        return
    from . import tunnels

    for service in tunnels.services():
        tunnels.refresh(service)


def on_hosted_colab() -> bool:
    return environment.is_hosted_colab()


def hosted_colab_terms() -> Optional[str]:
    """Colab's terms on remote access, when running on hosted Colab (printed after ``%tunnel ssh``)."""
    return environment.COLAB_TERMS if environment.is_hosted_colab() else None
