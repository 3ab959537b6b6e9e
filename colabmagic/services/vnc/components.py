"""The three processes of a desktop: the VNC X server, the XFCE session, the noVNC web bridge.

For each one this module builds the ``supervisor.ServiceSpec`` (argument
list, environment, facts for ``%colabmagic status``) and a readiness probe
that checks the real thing: the server greets with an RFB banner and its X
socket accepts connections; the XFCE panel and desktop windows exist on
that display; the web bridge serves noVNC's page. It also writes the two
credential files the server reads: the VNC password file (made by
``vncpasswd -f`` from stdin) and an X authority cookie, both 0600.
"""

from __future__ import annotations

import os
import re
import secrets as _random
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from ...errors import BadInputError, PortInUseError, ServiceError
from ...system import daemon_environment, paths, probes, procfs, supervisor
from ...system.secrets import Secret
from ..records import Record

GROUP = "vnc"
XVNC = "vnc-xserver"
SESSION = "vnc-session"
WEB = "vnc-web"
NOVNC_DIRS = ("/usr/share/novnc", "/usr/share/noVNC")
TURBOVNC = Path("/opt/TurboVNC/bin")
VIRTUALGL = Path("/opt/VirtualGL/bin")
BASE_PORT = 5900


ROLES = {XVNC: "VNC server", SESSION: "XFCE session", WEB: "noVNC web client"}  # in progress messages


# --- what each step records (its Service.info) ------------------------------------------------


@dataclass(frozen=True)
class Exposure(Record):
    """The tunnel the desktop is exposed through, on the step it exposes (the X server, or the web
    client with ``web``): written once the tunnel is up, cleared when a re-run drops it."""

    tunnel: Optional[str] = None  # the tunnel's name (services/tunnels)
    public_url: Optional[str] = None  # what the user opens (or connects a VNC client to)


@dataclass(frozen=True)
class XServerRecord(Exposure):
    """The VNC X server's record: which build, display, port and screen."""

    GROUP = GROUP

    server: str = "tigervnc"  # Server.kind
    display: str = ""  # ":N"
    port: int = 0  # the RFB port
    geometry: str = ""
    depth: int = 24

    def loopback_port(self) -> int:
        return self.port


@dataclass(frozen=True)
class SessionRecord(Record):
    """The XFCE session's record."""

    GROUP = GROUP

    display: str = ""
    gpu: bool = False  # started with VirtualGL's variables
    drawn_pid: Optional[int] = None  # the session process seen drawn (see session_ready)


@dataclass(frozen=True)
class WebRecord(Exposure):
    """The noVNC web bridge's record: its page's port and the VNC port it forwards to."""

    GROUP = GROUP

    web_port: int = 0
    vnc_port: int = 0

    def loopback_port(self) -> int:
        return self.web_port


@dataclass(frozen=True)
class Server:
    """Which VNC server build runs the desktop."""

    kind: str  # "tigervnc" or "turbovnc"
    xvnc: str
    vncpasswd: str


def find_server() -> Optional[Server]:
    """TurboVNC where it is installed, else TigerVNC from the distribution, else None."""
    if (TURBOVNC / "Xvnc").exists() and (TURBOVNC / "vncpasswd").exists():
        return Server("turbovnc", str(TURBOVNC / "Xvnc"), str(TURBOVNC / "vncpasswd"))
    xvnc = shutil.which("Xvnc")
    vncpasswd = shutil.which("vncpasswd")
    if xvnc and vncpasswd:
        return Server("tigervnc", xvnc, vncpasswd)
    return None


def novnc_dir() -> Optional[str]:
    for candidate in NOVNC_DIRS:
        if Path(candidate, "vnc.html").exists():
            return candidate
    return None


def parse_display(value: str) -> int:
    """``:1`` or ``1`` -> 1; anything else is refused before anything starts."""
    text = str(value).strip()
    match = re.fullmatch(r":?(\d{1,2})", text)
    if not match:
        raise BadInputError(f"not an X display: {value!r} (use :N with N from 0 to 99)")
    return int(match.group(1))


def parse_geometry(value: str) -> Tuple[int, int]:
    match = re.fullmatch(r"(\d{3,5})x(\d{3,5})", str(value).strip())
    if not match:
        raise BadInputError(f"not a geometry: {value!r} (use WIDTHxHEIGHT, e.g. 1280x800)")
    width, height = int(match.group(1)), int(match.group(2))
    if not (320 <= width <= 8192 and 200 <= height <= 8192):
        raise BadInputError(f"geometry {value!r} is out of range (320x200 to 8192x8192)")
    return width, height


def check_depth(depth: int) -> int:
    if depth not in (16, 24, 32):
        raise BadInputError(f"depth must be 16, 24 or 32, not {depth!r}")
    return depth


# --- credentials -----------------------------------------------------------------------------


def state_dir() -> Path:
    return paths.subdir("vnc")


def write_password_file(server: Server, password: Secret) -> Path:
    """The server's password file, made by ``vncpasswd -f`` (password on stdin), 0600."""
    result = subprocess.run(
        [server.vncpasswd, "-f"],
        input=(password.reveal() + "\n").encode(),
        capture_output=True,
        timeout=30,
    )
    if result.returncode != 0 or len(result.stdout) < 8:
        raise ServiceError("vncpasswd could not make the VNC password file",
                           details=result.stderr.decode("utf-8", "replace").splitlines()[-5:])
    path = state_dir() / "passwd"
    paths.write_file(path, result.stdout[:8], mode=0o600)  # one full-control password, no view-only part
    return path


def write_xauthority(display: int) -> Path:
    """An MIT-MAGIC-COOKIE-1 entry for ``display`` (any host), so only holders of the file reach the X server.

    The cookie is kept when the file already has one for this display, so a
    running session stays valid across re-runs.
    """
    path = state_dir() / f"Xauthority.{display}"
    number = str(display).encode()
    name = b"MIT-MAGIC-COOKIE-1"
    cookie = _read_cookie(path, number, name) or _random.token_bytes(16)

    def field(data: bytes) -> bytes:
        return struct.pack(">H", len(data)) + data

    entry = struct.pack(">H", 0xFFFF) + field(b"") + field(number) + field(name) + field(cookie)
    paths.write_file(path, entry, mode=0o600)
    return path


def _read_cookie(path: Path, number: bytes, name: bytes) -> Optional[bytes]:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    pos = 2
    fields = []
    try:
        for _ in range(4):
            (length,) = struct.unpack(">H", raw[pos:pos + 2])
            fields.append(raw[pos + 2:pos + 2 + length])
            pos += 2 + length
    except struct.error:
        return None
    if fields[1] == number and fields[2] == name and len(fields[3]) == 16:
        return fields[3]
    return None


# --- the X server ------------------------------------------------------------------------------


def lock_file(display: int) -> Path:
    return Path(f"/tmp/.X{display}-lock")


def x_socket(display: int) -> Path:
    return Path(f"/tmp/.X11-unix/X{display}")


def check_display_free(display: int, port: int) -> None:
    """Refuse a display or port another program holds (naming it); clear a dead server's lock."""
    lock = lock_file(display)
    try:
        holder = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        holder = 0
    if holder and procfs.is_running(holder):
        who = " ".join(procfs.cmdline(holder))[:120] or "an unknown program"
        raise PortInUseError(f"X display :{display} is already in use by pid {holder} ({who}); "
                             f"choose another with --display :N")
    if lock.exists() and not (holder and procfs.is_running(holder)):
        # A server that died without cleaning up leaves its lock and socket; Xvnc refuses to start
        # over them. They name a process that no longer exists, so removing them harms no one.
        for stale in (lock, x_socket(display)):
            try:
                stale.unlink()
            except OSError:
                pass
    supervisor.check_port_free(port, f"the VNC server on display :{display}")


def xserver_spec(server: Server, display: int, port: int, geometry: str, depth: int,
                 passwd: Path, xauth: Path) -> supervisor.ServiceSpec:
    if server.kind == "turbovnc":
        security = ["-securitytypes", "VNC", "-alwaysshared"]
    else:
        security = ["-SecurityTypes", "VncAuth", "-AlwaysShared", "-interface", "127.0.0.1"]
    argv = [
        server.xvnc, f":{display}",
        "-geometry", geometry, "-depth", str(depth),
        "-rfbport", str(port), "-localhost",
        *security,
        "-rfbauth", str(passwd), "-auth", str(xauth),
        "-nolisten", "tcp", "-desktop", "colabmagic",
    ]
    info = XServerRecord(server=server.kind, display=f":{display}", port=port, geometry=geometry, depth=depth)
    return supervisor.ServiceSpec(name=XVNC, argv=argv, restart=True, backoff_max=5.0,
                                  stop_timeout=10.0, info=info.to_info())


def xserver_ready(display: int, port: int) -> Callable[[], bool]:
    def ready() -> bool:
        if not probes.banner(port, b"RFB "):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(x_socket(display)))
            except OSError:
                return False
        return True

    return ready


# --- the XFCE session ------------------------------------------------------------------------


def session_env(display: int, xauth: Path, gpu_env: Dict[str, str]) -> Dict[str, str]:
    env = {
        "DISPLAY": f":{display}",
        "XAUTHORITY": str(xauth),
        "XDG_SESSION_TYPE": "x11",
        "XDG_CURRENT_DESKTOP": "XFCE",
        "NO_AT_BRIDGE": "1",  # no accessibility bus: one D-Bus per desktop, nothing left behind
    }
    env.update(gpu_env)
    return env


def session_spec(display: int, xauth: Path, gpu_env: Dict[str, str]) -> supervisor.ServiceSpec:
    runner = shutil.which("dbus-run-session") or "dbus-run-session"
    startxfce4 = shutil.which("startxfce4") or "startxfce4"
    info = SessionRecord(display=f":{display}", gpu=bool(gpu_env))
    # dbus-run-session gives the desktop its own session bus and stays in the foreground; when the
    # session ends it ends the bus too. The keeper restarts a session that was logged out of.
    return supervisor.ServiceSpec(name=SESSION, argv=[runner, "--", startxfce4],
                                  env=session_env(display, xauth, gpu_env), restart=True,
                                  backoff_max=5.0, stop_timeout=4.0, info=info.to_info())


def _xprop(args: List[str], env: Dict[str, str]) -> str:
    xprop = shutil.which("xprop") or "xprop"
    try:
        result = subprocess.run([xprop, *args], capture_output=True, text=True, env=env, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout if result.returncode == 0 else ""


@dataclass(frozen=True)
class Windows:
    clients: Tuple[str, ...]  # windows the window manager manages (_NET_CLIENT_LIST)
    desktop: bool  # XFCE's desktop window is set and managed
    panels: int  # managed xfce4-panel windows


def desktop_windows(display: int, xauth: Path) -> Windows:
    """What the X server shows: the managed client windows, XFCE's desktop window, panel windows."""
    env = daemon_environment.minimal({"DISPLAY": f":{display}", "XAUTHORITY": str(xauth)})
    root = _xprop(["-root", "XFCE_DESKTOP_WINDOW", "_NET_CLIENT_LIST"], env)
    desktop = ""
    clients: List[str] = []
    for line in root.splitlines():
        if line.startswith("XFCE_DESKTOP_WINDOW("):
            desktop = (re.findall(r"0x[0-9a-fA-F]+", line) or [""])[0]
        elif line.startswith("_NET_CLIENT_LIST("):
            clients = re.findall(r"0x[0-9a-fA-F]+", line)
    panels = [w for w in clients if "xfce4-panel" in _xprop(["-id", w, "WM_CLASS"], env).lower()]
    return Windows(tuple(clients), bool(desktop) and desktop in clients, len(panels))


SETTLE = 1.5  # seconds the window list must stay unchanged: the panel adds windows as plugins load


def session_ready(display: int, xauth: Path, service: Callable[[], Optional[supervisor.Service]]
                  ) -> Callable[[], bool]:
    """Ready when XFCE's desktop and panel windows are managed and no new window has come for a while.

    The panel maps its first window before its plugins load and adds the
    others (the dock) as they do; it is drawn once that settles. Checked at
    most every 0.25 s.
    """
    last = 0.0
    seen: Optional[Tuple[str, ...]] = None
    since = 0.0

    def ready() -> bool:
        nonlocal last, seen, since
        now = time.monotonic()
        if now - last < 0.25:
            return False
        last = now
        svc = service()
        if svc is not None and svc.pid is None:
            return False
        found = desktop_windows(display, xauth)
        if not (found.desktop and found.panels):
            seen = None
            return False
        if svc is not None and svc.pid is not None and SessionRecord.of(svc).drawn_pid == svc.pid:
            return True  # this very session was seen drawn before (a re-run's check)
        if found.clients != seen:
            seen, since = found.clients, now
            return False
        return now - since >= SETTLE

    return ready


def mark_drawn(service: supervisor.Service) -> None:
    """Remember that this session process passed the full check, so a re-run's check is one look."""
    if service.pid is not None:
        replace(SessionRecord.of(service), drawn_pid=service.pid).save(service)


def gpu_environment(gpus_present: bool) -> Tuple[Dict[str, str], str]:
    """Session variables for VirtualGL, and a message for the user (empty when all is well)."""
    vglrun = VIRTUALGL / "vglrun"
    if gpus_present and vglrun.exists():
        path = f"{VIRTUALGL}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        return {"PATH": path, "VGL_DISPLAY": "egl"}, (
            "--gpu: VirtualGL is set up; start OpenGL programs on the desktop with `vglrun PROGRAM` "
            "to render on the NVIDIA GPU")
    if not gpus_present:
        return {}, ("--gpu: no NVIDIA GPU is visible on this machine, so OpenGL programs render in "
                    "software; the desktop works as usual")
    return {}, (f"--gpu: an NVIDIA GPU is present but VirtualGL is not installed ({vglrun} is missing); "
                "install VirtualGL from virtualgl.org to render OpenGL on the GPU. The desktop works "
                "with software OpenGL meanwhile")


# --- the web bridge ---------------------------------------------------------------------------


def web_spec(web_port: int, vnc_port: int, web_root: str) -> supervisor.ServiceSpec:
    websockify = shutil.which("websockify") or "websockify"
    return supervisor.ServiceSpec(
        name=WEB,
        argv=[websockify, "--web", web_root, f"127.0.0.1:{web_port}", f"127.0.0.1:{vnc_port}"],
        restart=True, backoff_max=5.0, stop_timeout=5.0,
        info=WebRecord(web_port=web_port, vnc_port=vnc_port).to_info(),
    )


def web_ready(web_port: int) -> Callable[[], bool]:
    return lambda: probes.http_ok(f"http://127.0.0.1:{web_port}/vnc.html")


def end_detached(service: supervisor.Service) -> List[int]:
    """SIGTERM the processes of ``service`` that left its process group (ours by their token).

    XFCE starts ssh-agent and gpg-agent, which detach into their own sessions,
    so the group signal of a stop does not reach them; without this the stop
    would wait its whole timeout before sweeping them.
    """
    token = service.token
    child = service.child
    if not token or child is None:
        return []
    group = child.pgid or procfs.pgid(child.pid)
    ended = []
    for pid in procfs.processes_with_env(supervisor.TOKEN_ENV, token):
        if group is None or procfs.pgid(pid) != group:
            try:
                os.kill(pid, signal.SIGTERM)
                ended.append(pid)
            except OSError:
                pass
    return ended
