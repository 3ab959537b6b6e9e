"""The remote desktop: an XFCE session on a VNC X server, optionally in the browser through noVNC.

``start(VncConfig(...))`` installs what is missing, then brings up one
composite service in order, each step supervised and probed: the VNC X
server on ``:N`` (loopback, VNC password auth only), the XFCE session under
its own D-Bus, and with ``web`` the noVNC bridge (websockify). A step that
fails undoes the ones before it; ``stop()`` goes in reverse order.
Re-running with the same settings reuses the running desktop; different
settings restart the steps that changed and those after them.
``screenshot()`` captures the desktop over RFB with our password, proving
the VNC path itself. Plain Python: the ``%vnc`` magic is a thin layer on this.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ... import display as fmt
from ...errors import BadInputError, ColabMagicError, InstallError, ServiceError
from ...system import daemon_environment, environment, installer, probes, secrets, supervisor
from ...system.secrets import Secret, SecretLike
from ..tunnel_registry import TunnelSettings, encrypted
from . import components as parts

PASSWORD_SECRET = "VNC_PASSWORD"
TUNNEL_NAME = "vnc"
TIGERVNC_PACKAGES = ("tigervnc-standalone-server", "tigervnc-tools")
# Debian 11 (TigerVNC 1.11) has no tigervnc-tools: vncpasswd is in tigervnc-common there, which
# tigervnc-standalone-server depends on. From Debian 12 and Ubuntu 22.04 on it is in tigervnc-tools.
VNCPASSWD_TOOLS = "tigervnc-tools"
DESKTOP_PACKAGES = ("xfce4", "xfce4-terminal", "dbus-x11", "x11-utils")
WEB_PACKAGES = ("novnc", "websockify")
CAPTURE_SCRIPT = str(Path(__file__).with_name("capture.py"))

Announce = Callable[[str], None]
Progress = Callable[[float, str], None]


def _print(message: str) -> None:
    print(message, file=sys.stdout, flush=True)


@dataclass(frozen=True)
class VncConfig:
    """What the user asked for, as plain data (the magic builds it from its traits and line)."""

    geometry: str = "1280x800"
    depth: int = 24
    display: str = ":1"
    web: bool = False
    web_port: int = 0  # 0: a free loopback port (kept across re-runs)
    via: Optional[str] = None  # tunnel provider exposing the desktop (the web page with ``web``)
    tunnel: TunnelSettings = field(default_factory=TunnelSettings)  # relay, frp server, binaries (%tunnel's)
    insecure: bool = False  # allow a tunnel whose public side is not encrypted (the password crosses in clear)
    gpu: bool = False
    timeout: float = 180.0  # for each step (X server, session, web client) to be ready
    offline: bool = False  # never download a tunnel agent (COLABMAGIC_OFFLINE does the same)

    def display_number(self) -> int:
        return parts.parse_display(self.display)

    def port(self) -> int:
        return parts.BASE_PORT + self.display_number()


@dataclass(frozen=True)
class VncDesktop:
    """A running desktop: what ``%vnc start`` and ``%vnc status`` return. The password prints masked."""

    display: str
    port: int
    password: Optional[Secret] = None
    web_url: Optional[str] = None
    public_url: Optional[str] = None
    status: str = "running"
    pid: Optional[int] = None
    geometry: str = ""
    depth: int = 24
    server: str = "tigervnc"
    session_pid: Optional[int] = None
    web_pid: Optional[int] = None
    restarts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connect_help(self) -> str:
        """How to reach the desktop from the user's own computer."""
        lines = []
        if self.public_url:
            lines.append(f"browser: open {self.public_url} and enter the VNC password (%vnc password)")
        lines.append(
            f"VNC client: forward the port over SSH, e.g. add `-L {self.port}:localhost:{self.port}` to the "
            f"ssh command `%tunnel ssh` printed, then connect a VNC viewer to localhost:{self.port}"
        )
        if self.web_url:
            web_port = self.web_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
            lines.append(
                f"browser over SSH: add `-L {web_port}:localhost:{web_port}`, then open "
                f"{self.web_url.replace('127.0.0.1', 'localhost')}"
            )
        if not self.web_url and environment.is_hosted_colab():
            lines.append("on Colab: %vnc start --web shows the desktop inside the notebook")
        lines.append("password: %vnc password (or vnc.password().reveal()) shows it")
        return "\n".join(lines)

    def _fields(self) -> List[Tuple[str, Any]]:
        return [
            ("display", self.display),
            ("VNC address", self.address),
            ("geometry", f"{self.geometry}x{self.depth}" if self.geometry else None),
            ("web", self.web_url),
            ("public", self.public_url),
            ("password", self.password),
            ("status", self.status),
            ("pid", self.pid),
            ("restarts", self.restarts),
        ]

    def __repr__(self) -> str:
        return fmt.card_text(f"VncDesktop {self.display} ({self.server})", self._fields(),
                             [("connect", self.connect_help())])

    def _repr_html_(self) -> str:
        return fmt.card_html(f"VncDesktop {self.display} ({self.server})", self._fields(),
                             [("connect", self.connect_help())])


# --- password ---------------------------------------------------------------------------------


def password(explicit: SecretLike = None) -> Optional[Secret]:
    """The desktop's password: an explicit one, $VNC_PASSWORD, Colab's Secrets, else the stored one."""
    found = secrets.get(PASSWORD_SECRET, explicit=explicit, prompt=False)
    if found is None:
        found = secrets.load(PASSWORD_SECRET)
    return found


def _choose_password(explicit: SecretLike) -> Secret:
    """The password to use (checked, not yet stored)."""
    found = password(explicit)
    if found is None:
        found = secrets.generate_password(8)  # VNC authentication uses exactly 8 characters
    value = found.reveal()
    if not 6 <= len(value) <= 8 or "\n" in value:
        raise BadInputError("a VNC password must have 6 to 8 characters (VNC authentication "
                            "ignores anything after the 8th)")
    return found


# --- start / stop -----------------------------------------------------------------------------


def required_packages(config: VncConfig, server: Optional[parts.Server]) -> List[str]:
    needed: List[str] = []
    if server is None or server.kind != "turbovnc":
        needed.extend(TIGERVNC_PACKAGES)
    needed.extend(DESKTOP_PACKAGES)
    if config.web:
        needed.extend(WEB_PACKAGES)
    return needed


def _install(packages: List[str], progress: Optional[Progress]) -> None:
    """Install ``packages``; where the release has no tigervnc-tools (Debian 11), without it."""
    try:
        installer.ensure_packages(packages, progress=progress)
    except InstallError:
        if VNCPASSWD_TOOLS not in packages or installer.known_to_apt(VNCPASSWD_TOOLS):
            raise
        installer.ensure_packages([p for p in packages if p != VNCPASSWD_TOOLS], progress=progress)


def _validate(config: VncConfig) -> None:
    parts.parse_geometry(config.geometry)
    parts.check_depth(int(config.depth))
    config.display_number()
    if config.web_port and not 1 <= int(config.web_port) <= 65535:
        raise BadInputError(f"web port must be from 1 to 65535, not {config.web_port}")
    if config.via is not None and not str(config.via).strip():
        raise BadInputError("--via needs a tunnel provider name")


def _same(service: Optional[supervisor.Service], spec: supervisor.ServiceSpec) -> bool:
    return bool(service is not None and service.keeper_alive()
                and service.record().get("fingerprint") == spec.fingerprint())


def _stop_steps(names: Sequence[str]) -> List[str]:
    """Stop the named steps that run, in the order given (callers pass reverse start order)."""
    stopped = []
    for name in names:
        # The record, not adopt(): a step whose keeper was killed from outside may still have
        # processes carrying its token, and Service.stop() sweeps those too.
        service = supervisor.Service(name)
        if not service.exists():
            continue
        if name in (parts.WEB, parts.XVNC):
            _stop_tunnel(service)
        parts.end_detached(service)
        if service.stop():
            stopped.append(name)
    return stopped


def _stop_tunnel(service: supervisor.Service) -> None:
    name = parts.Exposure.of(service).tunnel
    if not name:
        return
    try:
        from .. import tunnels
    except ImportError:
        return
    tunnels.stop(name)


def _web_port(config: VncConfig, vnc_port: int) -> int:
    if config.web_port:
        return int(config.web_port)
    running = supervisor.adopt(parts.WEB)
    if running is not None and running.keeper_alive():
        recorded = parts.WebRecord.of(running)
        if recorded.vnc_port == vnc_port and recorded.web_port:
            return recorded.web_port
    return probes.free_port()


def start(config: VncConfig = VncConfig(), password: SecretLike = None, announce: Announce = _print,
          progress: Optional[Progress] = None, install_progress: Optional[Progress] = None) -> VncDesktop:
    """Bring up the desktop (or reuse the running one) and return it once every step is ready.

    ``password`` (6 to 8 characters) replaces the stored one; without it the
    stored password, $VNC_PASSWORD or Colab's secret of that name is used, or
    one is generated. ``progress`` follows the steps, ``install_progress`` the
    package installation (only called when something is missing).
    """
    _validate(config)
    secret = _choose_password(password)
    display_no = config.display_number()
    vnc_port = config.port()
    web_port = _web_port(config, vnc_port) if config.web else 0
    via = (config.via or "").strip() or None
    # The tunnel request is checked (provider known, its settings, Colab only on Colab) before
    # anything is installed, written or started.
    tunnel_config = _tunnel_config(config, via, web_port if config.web else vnc_port) if via else None

    server = parts.find_server()
    _install(required_packages(config, server), install_progress or progress)
    server = parts.find_server()
    if server is None:
        raise ServiceError("no VNC server (Xvnc and vncpasswd) was found after installing TigerVNC")
    web_root = parts.novnc_dir() if config.web else None
    if config.web and web_root is None:
        raise ServiceError("noVNC's files (vnc.html) were not found after installing novnc")

    secrets.store(PASSWORD_SECRET, secret)
    passwd = parts.write_password_file(server, secret)
    xauth = parts.write_xauthority(display_no)
    gpu_env: Dict[str, str] = {}
    if config.gpu:
        gpu_env, message = parts.gpu_environment(bool(environment.gpus()))
        announce(message)

    xspec = parts.xserver_spec(server, display_no, vnc_port, config.geometry, int(config.depth), passwd, xauth)
    sspec = parts.session_spec(display_no, xauth, gpu_env)
    steps: List[Tuple[supervisor.ServiceSpec, Callable[[], bool]]] = [
        (xspec, parts.xserver_ready(display_no, vnc_port)),
        (sspec, parts.session_ready(display_no, xauth, lambda: supervisor.adopt(parts.SESSION))),
    ]
    if config.web:
        assert web_root is not None
        steps.append((parts.web_spec(web_port, vnc_port, web_root), parts.web_ready(web_port)))

    # Every step from the first one that differs from what runs is restarted, and so is every
    # later step (the session belongs to its X server); a web bridge no longer wanted is stopped.
    order = [parts.XVNC, parts.SESSION, parts.WEB]
    first_changed = len(steps)
    for index, (spec, _ready) in enumerate(steps):
        if not _same(supervisor.adopt(spec.name), spec):
            first_changed = index
            break
    _stop_steps(list(reversed(order[first_changed:])))
    reused_all = first_changed == len(steps) and len(steps) > 0

    if first_changed == 0:
        parts.check_display_free(display_no, vnc_port)
    if config.web and first_changed <= 2:
        supervisor.check_port_free(web_port, "the noVNC web client")

    started: List[str] = []
    try:
        for spec, ready in steps:
            service = supervisor.start(spec, ready=ready, timeout=config.timeout)
            if spec.name == parts.SESSION:
                parts.mark_drawn(service)
            started.append(spec.name)
            if progress is not None:
                progress(len(started) / len(steps), f"{parts.ROLES[spec.name]} ready")
    except ColabMagicError as exc:
        _stop_steps(list(reversed(order)))
        raise ServiceError(f"the desktop did not start: {exc.message}; everything started was stopped",
                           log=exc.log, details=exc.details) from exc

    public_url = None
    if via:
        try:
            public_url = _expose(config, via, tunnel_config, announce)
        except ColabMagicError as exc:
            raise ServiceError(f"the desktop runs on :{display_no}, but exposing it via {via} failed: "
                               f"{exc.message}", log=exc.log, details=exc.details) from exc
    else:
        _unexpose()
        if config.web and environment.is_hosted_colab():
            try:
                public_url = colab_url(_web_port_of_running())
            except ColabMagicError as exc:
                raise ServiceError(f"the desktop runs on :{display_no}, but showing it through Colab's port proxy "
                                   f"failed: {exc.message}") from None

    if reused_all:
        announce(f"the desktop on :{display_no} was already running: reused it")
    elif environment.is_hosted_colab():
        announce("Notice: " + environment.COLAB_TERMS)
    desktop = current()
    if desktop is None:
        raise ServiceError("the desktop stopped right after it started", log=supervisor.log_path(parts.SESSION))
    if public_url and desktop.public_url != public_url:
        desktop = replace(desktop, public_url=public_url)
    return desktop


def _web_port_of_running() -> int:
    service = supervisor.adopt(parts.WEB)
    return parts.WebRecord.of(service).web_port if service is not None else 0


def _tunnel_config(config: VncConfig, via: str, port: int) -> Any:
    """The tunnel request for ``port``, checked by the tunnel layer before anything starts."""
    try:
        from .. import tunnels
    except ImportError as exc:
        raise ServiceError(f"--via {via}: the tunnel layer is not available in this build ({exc})") from exc
    prov = tunnels.provider(via)
    # An http tunnel where the provider gives one without extra settings (the page and its
    # WebSocket pass through it); else a tcp one, which carries them just as well.
    proto = "http" if (config.web and encrypted(via, "http") and "http" in prov.protos) else "tcp"
    # The page and RFB carry the VNC password: only over an encrypted public side (exposure.py).
    if config.web:
        tunnels.exposure.require_encrypted("the noVNC page and the VNC password", via, proto, config.insecure,
                                           tunnels.exposure.SAFE_HTTP.format(port=port))
    else:
        tunnels.exposure.require_encrypted("raw VNC (the password's challenge and every keystroke)", via, proto,
                                           config.insecure, tunnels.exposure.SAFE_TCP.format(port=port))
    tunnel_config = tunnels.TunnelConfig(name=TUNNEL_NAME, local_port=port, proto=proto,
                                         options=dict(config.tunnel.options), binary=config.tunnel.binary(via),
                                         offline=config.offline)
    check = getattr(tunnels, "check", None)
    if check is not None:
        check(tunnel_config, via)
    return tunnel_config


def _expose(config: VncConfig, via: str, tunnel_config: Any, announce: Announce) -> Optional[str]:
    """Expose the web page (or the VNC port itself without ``web``) through the tunnel layer."""
    from .. import tunnels

    owner = supervisor.adopt(parts.WEB if config.web else parts.XVNC)
    tunnel = tunnels.start(tunnel_config, via=via, announce=announce)
    if tunnel.public_url:
        base = tunnel.public_url.rstrip("/")
    elif tunnel.public_host:
        base = f"http://{tunnel.public_host}:{tunnel.public_port}" if config.web else \
            f"{tunnel.public_host}:{tunnel.public_port}"
    else:
        return None
    public = base + "/vnc.html?autoconnect=1&resize=remote" if config.web else base
    if owner is not None:
        parts.Exposure(tunnel=TUNNEL_NAME, public_url=public).save(owner)
    return public


def _unexpose() -> None:
    """A re-run without --via ends the tunnel an earlier run opened."""
    for name in (parts.WEB, parts.XVNC):
        service = supervisor.adopt(name)
        if service is not None and parts.Exposure.of(service).tunnel:
            _stop_tunnel(service)
            parts.Exposure().save(service)


def colab_url(web_port: int) -> Optional[str]:
    """The noVNC page through hosted Colab's port proxy (reachable only from the user's browser)."""
    from ..tunnels.colab import proxy_url  # a clear error for no answer (None) or a browser error

    url = proxy_url(int(web_port)).rstrip("/") + "/vnc.html?autoconnect=1&resize=remote"
    service = supervisor.adopt(parts.WEB)
    if service is not None:
        replace(parts.Exposure.of(service), public_url=url).save(service)
    return url


def stop() -> List[str]:
    """Stop the desktop in reverse order (web bridge, session, X server). Returns what ran."""
    return _stop_steps([parts.WEB, parts.SESSION, parts.XVNC])


# --- looking at it ----------------------------------------------------------------------------


def current() -> Optional[VncDesktop]:
    """``_colabmagic.vnc``: the running desktop (adopted from disk) or None."""
    xserver = supervisor.adopt(parts.XVNC)
    if xserver is None:
        return None
    session = supervisor.adopt(parts.SESSION)
    web = supervisor.adopt(parts.WEB)
    recorded = parts.XServerRecord.of(xserver)
    statuses = {"X server": xserver.status, "session": session.status if session else "absent"}
    if web is not None:
        statuses["web"] = web.status
    status = "running" if all(s == "running" for s in statuses.values()) else \
        "degraded (" + ", ".join(f"{k}: {v}" for k, v in statuses.items() if v != "running") + ")"
    web_url = None
    public_url = recorded.public_url
    if web is not None:
        web_recorded = parts.WebRecord.of(web)
        web_url = f"http://127.0.0.1:{web_recorded.web_port}/vnc.html?autoconnect=1&resize=remote"
        public_url = web_recorded.public_url or public_url
    restarts = xserver.restarts + (session.restarts if session else 0) + (web.restarts if web else 0)
    return VncDesktop(
        display=recorded.display,
        port=recorded.port,
        password=secrets.load(PASSWORD_SECRET),
        web_url=web_url,
        public_url=public_url,
        status=status,
        pid=xserver.pid,
        geometry=recorded.geometry,
        depth=recorded.depth,
        server=recorded.server,
        session_pid=session.pid if session else None,
        web_pid=web.pid if web else None,
        restarts=restarts,
    )


def status() -> Optional[VncDesktop]:
    return current()


def screenshot(save: Optional[str] = None, timeout: float = 60.0, password: SecretLike = None) -> bytes:
    """The desktop as PNG bytes, captured by a VNC client over RFB with the desktop's password.

    With ``save``, the PNG is also written to that file. ``password`` overrides the stored one
    (a wrong one is refused by the server, which is the point of trying).
    """
    desktop = current()
    if desktop is None:
        raise ServiceError("no desktop is running; start one with %vnc start")
    secret = secrets.get(PASSWORD_SECRET, explicit=password, prompt=False) if password else desktop.password
    if secret is None:
        raise ServiceError("the desktop's password is missing from colabmagic's secrets; run %vnc start again")
    with tempfile.TemporaryDirectory(dir=str(parts.state_dir())) as tmp:
        out = Path(tmp) / "screen.png"
        try:
            result = subprocess.run(
                [sys.executable, CAPTURE_SCRIPT, "127.0.0.1", str(desktop.port), str(out)],
                input=(secret.reveal() + "\n").encode(),
                capture_output=True,
                timeout=timeout,
                env=_capture_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"the VNC capture did not finish within {timeout:.0f}s") from exc
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        if result.returncode == 4:
            raise ServiceError("the VNC server refused the password", details=message)
        if result.returncode != 0 or not out.exists():
            raise ServiceError("the VNC capture failed", details=message)
        data = out.read_bytes()
    if save:
        target = Path(save).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return data


def _capture_env() -> Dict[str, str]:
    # The capture is an RFB client, never an X client (no DISPLAY), and gets none of the kernel's secrets.
    return daemon_environment.minimal()


__all__ = ["VncConfig", "VncDesktop", "start", "stop", "status", "current", "screenshot", "password",
           "colab_url", "required_packages"]
