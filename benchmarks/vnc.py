"""Row 2: desktop ready. ``%vnc start`` against remocolab's package set and steps, to the first VNC frame.

remocolab's steps, with the distribution's TigerVNC as the VNC server (its
TurboVNC download is not reachable offline): ``apt-get install xfce4
xfce4-terminal`` WITH recommends plus the VNC server, an xstartup that runs
``startxfce4``, ``vncpasswd``, ``vncserver :N``. The recipe runs in a
throwaway HOME with a marker in its environment, so every process it leaves
behind is found and ended afterwards. Both ways are timed from the command
to the first framebuffer update a real RFB client (raw RFB 3.8 with VNC
authentication, DES from vncdotool) receives.

Cold (``vnc-cold``, optional, 1–3 runs): the packages only the desktop
needs are removed first (announced); the recipe then installs with
recommends, colabmagic without. Everything is put back as it was after.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Dict, List, Set, Tuple

from .harness import (
    APT_ENV,
    APT_GET,
    Context,
    Result,
    measure,
    run_quiet,
    stop_services,
    timed,
    which,
)

PASSWORD = "bench123"
VNC_SERVER = ["tigervnc-standalone-server", "tigervnc-tools"]
RECIPE_DESKTOP = ["xfce4", "xfce4-terminal"]
XSTARTUP = """#!/bin/sh
unset SESSION_MANAGER
unset DBUS_SESSION_BUS_ADDRESS
exec startxfce4
"""


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the VNC server closed the connection")
        data += chunk
    return data


def first_frame(port: int, password: str, timeout: float = 5.0) -> bool:
    """Handshake, authenticate, ask for the whole screen; True once a FramebufferUpdate arrives."""
    from vncdotool.rfb import _vnc_des, des_encrypt

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if not _recv(sock, 12).startswith(b"RFB "):
                return False
            sock.sendall(b"RFB 003.008\n")
            types = _recv(sock, _recv(sock, 1)[0])
            if 2 not in types:
                return False
            sock.sendall(b"\x02")
            with warnings.catch_warnings():  # cryptography calls the DES it needs "decrepit"
                warnings.simplefilter("ignore")
                response = des_encrypt(_vnc_des(password), _recv(sock, 16))
            sock.sendall(response)
            if struct.unpack("!I", _recv(sock, 4))[0] != 0:
                return False
            sock.sendall(b"\x01")  # ClientInit, shared
            width, height = struct.unpack("!HH", _recv(sock, 4))
            _recv(sock, 16)
            _recv(sock, struct.unpack("!I", _recv(sock, 4))[0])
            sock.sendall(struct.pack("!BBHHHH", 3, 0, 0, 0, width, height))
            while True:
                kind = _recv(sock, 1)[0]
                if kind == 0:
                    return True
                if kind == 2:  # Bell
                    continue
                return False
    except OSError:
        return False


def _wait_frame(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if first_frame(port, PASSWORD):
            return
        time.sleep(0.05)
    raise RuntimeError(f"no VNC frame on port {port} within {timeout:.0f}s")


def free_display(avoid: Set[int]) -> int:
    from colabmagic.system import probes

    for number in range(30 + os.getpid() % 40, 99):
        if number in avoid or Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        if not probes.port_open(5900 + number) and not probes.port_open(6000 + number):
            return number
    raise RuntimeError("no free X display")


def _marked(token: str) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class Recipe:
    """remocolab's steps in a throwaway HOME; ``stop`` ends every process carrying its marker."""

    def __init__(self, ctx: Context, display: int):
        self.ctx, self.display = ctx, display
        self.token = f"COLABMAGIC_BENCH_RECIPE={uuid.uuid4().hex}"
        self.home = ctx.folder("recipe-vnc-home")
        self.env: Dict[str, str] = {**os.environ, "HOME": str(self.home), "USER": "root",
                                    self.token.split("=")[0]: self.token.split("=")[1]}
        self.env.pop("DISPLAY", None)
        self.frame_at = 0.0

    def start(self, install: bool = False) -> None:
        if install:
            run_quiet([*APT_GET, "install", *RECIPE_DESKTOP, *VNC_SERVER],
                      env={**os.environ, **APT_ENV}, timeout=3600)
        vnc = self.home / ".vnc"
        vnc.mkdir(mode=0o700)
        (vnc / "xstartup").write_text(XSTARTUP)
        os.chmod(vnc / "xstartup", 0o755)
        passwd = subprocess.run([which("vncpasswd"), "-f"], input=PASSWORD.encode(), capture_output=True,
                                check=True).stdout
        (vnc / "passwd").write_bytes(passwd)
        os.chmod(vnc / "passwd", 0o600)
        run_quiet([which("vncserver"), f":{self.display}", "-geometry", "1280x800", "-depth", "24",
                   "-localhost", "yes", "-xstartup", str(vnc / "xstartup")], env=self.env, timeout=120)
        _wait_frame(5900 + self.display)
        self.frame_at = time.perf_counter()

    def wait_drawn(self, timeout: float = 120.0) -> None:
        """colabmagic's own "desktop drawn" check (XFCE's desktop and panel up, window list settled)."""
        _drawn_check(self.display, self.home / ".Xauthority", timeout)

    def stop(self) -> None:
        vncserver = shutil.which("vncserver")
        if vncserver:  # else (removed meanwhile) the marker sweep below ends its processes
            subprocess.run([vncserver, "-kill", f":{self.display}"], env=self.env, capture_output=True,
                           stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _marked(self.token):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            while time.monotonic() < deadline and _marked(self.token):
                time.sleep(0.1)
            deadline = time.monotonic() + 5


def _drawn_check(display: int, xauth: Path, timeout: float = 120.0) -> None:
    """colabmagic's "desktop drawn" check, run from outside (XFCE's desktop and panel up, window list settled)."""
    from colabmagic.services.vnc import components

    ready = components.session_ready(display, xauth, lambda: None)
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the XFCE desktop on :{display} was not drawn within {timeout:.0f}s")
        time.sleep(0.05)


class Watch:
    """From the moment ``%vnc start`` begins: when a real RFB client gets its first frame, then when the
    desktop passes the drawn check, both observed from outside (the magic's own readiness is not used)."""

    def __init__(self, display: int, xauth: Path):
        self.began = time.perf_counter()
        self.frame = self.drawn = 0.0
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(display, xauth), daemon=True)
        self.thread.start()

    def _run(self, display: int, xauth: Path) -> None:
        try:
            _wait_frame(5900 + display, timeout=3600)  # a cold start installs packages first
            self.frame = time.perf_counter() - self.began
            _drawn_check(display, xauth)
            self.drawn = time.perf_counter() - self.began
        except Exception as exc:  # handed to the caller
            self.error = exc

    def result(self) -> Tuple[float, float]:
        self.thread.join(180)
        if self.error is not None or not self.drawn:
            raise RuntimeError(f"the desktop was not observed drawn: {self.error}")
        return self.frame, self.drawn


def _ours(ctx: Context, display: int) -> Tuple[float, float]:
    """Seconds from ``%vnc start`` to the first frame and to a drawn desktop, each measured on its own."""
    from colabmagic.services.vnc import components

    ctx.fresh_home("vnc")
    os.environ["VNC_PASSWORD"] = PASSWORD
    try:
        watch = Watch(display, components.state_dir() / f"Xauthority.{display}")
        ctx.cell(f"%vnc start --display :{display}")
        return watch.result()
    finally:
        os.environ.pop("VNC_PASSWORD", None)


# --- cold: packages ---------------------------------------------------------------------------


def _installed() -> Dict[str, bool]:
    """Installed package name -> manually installed?"""
    names = run_quiet(["dpkg-query", "-W", "-f=${db:Status-Status} ${Package}\n"]).stdout.split("\n")
    installed = {line.split()[1] for line in names if line.startswith("installed ")}
    manual = set(run_quiet(["apt-mark", "showmanual"]).stdout.split())
    return {name: name in manual for name in installed}


def _simulated_removals(argv: List[str]) -> Set[str]:
    out = run_quiet(["apt-get", "-s", *argv]).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("Remv ")}


def desktop_only_packages() -> List[str]:
    """Packages present only for the desktop: what removing it would take away, orphans excluded.

    A desktop package that another manually installed program depends on (chromium needs
    x11-utils and xdg-utils, for one) stays, and so does everything only it needs.
    """
    from colabmagic.services.vnc import DESKTOP_PACKAGES, TIGERVNC_PACKAGES

    wanted = sorted(set(DESKTOP_PACKAGES) | set(TIGERVNC_PACKAGES) | set(RECIPE_DESKTOP) | set(VNC_SERVER))
    manual = set(run_quiet(["apt-mark", "showmanual"]).stdout.split())
    keep = manual - set(wanted)
    wanted = [w for w in wanted if not (_simulated_removals(["remove", w]) & keep)]
    with_desktop = _simulated_removals(["remove", "--autoremove", *wanted])
    if with_desktop & keep:
        raise RuntimeError(f"removing the desktop would take away {sorted(with_desktop & keep)}; not doing it")
    already_orphans = _simulated_removals(["autoremove"])
    return sorted(with_desktop - already_orphans)


class Packages:
    """Remove the desktop's packages for a cold run, and put the machine's package set back after."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.before = _installed()
        self.removable = desktop_only_packages()
        self.recipe_adds: Set[str] = set()

    def make_cold(self) -> None:
        run_quiet([*APT_GET, "remove", *self.removable],
                  env={**os.environ, **APT_ENV}, timeout=1800)
        if not self.recipe_adds:
            out = run_quiet(["apt-get", "-s", "install", *RECIPE_DESKTOP, *VNC_SERVER]).stdout
            self.recipe_adds = {line.split()[1] for line in out.splitlines() if line.startswith("Inst ")}

    def restore(self) -> None:
        """Back to the package set seen at the start, touching only packages this row removed or added
        (other work on the machine may install or remove its own meanwhile)."""
        env = {**os.environ, **APT_ENV}
        ours = set(self.removable) | self.recipe_adds
        now = _installed()
        extra = sorted((set(now) - set(self.before)) & ours)
        if extra:
            run_quiet([*APT_GET, "remove", *extra], env=env, timeout=1800)
        missing = sorted((set(self.before) - set(_installed())) & ours)
        if missing:
            run_quiet([*APT_GET, "install", "--no-install-recommends", *missing], env=env, timeout=3600)
        auto = [name for name in ours if name in self.before and not self.before[name]]
        now = _installed()
        flip = [name for name in auto if now.get(name)]
        if flip:
            run_quiet(["apt-mark", "auto", *flip])


def run(ctx: Context, rows: List[str]) -> List[Result]:
    from colabmagic.services.vnc import DESKTOP_PACKAGES, TIGERVNC_PACKAGES
    from colabmagic.system import installer

    results: List[Result] = []
    warm_packages = [*TIGERVNC_PACKAGES, *DESKTOP_PACKAGES, *VNC_SERVER]
    mine_display = free_display(set())
    theirs_display = free_display({mine_display})

    ours_drawn: List[float] = []

    def ours_once(cold: bool = False) -> float:
        if not cold:  # warm: installed (other work on the machine may remove them); not timed
            installer.ensure_packages(warm_packages)
        try:
            frame, drawn_at = _ours(ctx, mine_display)
            if not cold:
                ours_drawn.append(drawn_at)
            return frame
        finally:
            stop_services()

    drawn: List[float] = []

    def theirs_once(install: bool = False) -> float:
        if not install:
            installer.ensure_packages(warm_packages)
        recipe = Recipe(ctx, theirs_display)
        try:
            began = time.perf_counter()
            recipe.start(install=install)
            if not install:  # the cold row stops at the first frame (the installs dominate it)
                recipe.wait_drawn()
                drawn.append(time.perf_counter() - began)
            return recipe.frame_at - began
        finally:
            recipe.stop()

    if "vnc" in rows:
        mine, recipe = measure(ctx.runs, ours_once, theirs_once)
        results.append(Result(row="Desktop ready, warm", what="to the first VNC frame", ours=mine, theirs=recipe,
                               ours_label="`%vnc start`", theirs_label="xstartup + vncpasswd + `vncserver`",
                               note="both ways: from the command to the first framebuffer update a separate RFB "
                                    "client receives (for colabmagic, while `%vnc start` is still running)"))
        results.append(Result(row="Desktop drawn, warm", what="XFCE desktop + panel up, window list settled 1.5 s",
                               ours=list(ours_drawn), theirs=list(drawn), ours_label="`%vnc start`",
                               theirs_label="same steps",
                               note="both ways: from the command until the same outside check (desktop and panel "
                                    "windows managed, window list unchanged for 1.5 s) passes"))
        results.append(_status_latency(ctx, mine_display))
    if "vnc-cold" in rows:
        packages = Packages(ctx)
        ctx.say(f"vnc-cold: removing {len(packages.removable)} Debian packages only the desktop uses before each "
                f"cold run ({', '.join(packages.removable[:8])}...); the machine's package set is restored after")
        run_quiet([*APT_GET, "install", "--download-only", *RECIPE_DESKTOP, *VNC_SERVER,
                   *packages.removable], timeout=3600)

        def ours_cold() -> float:
            packages.make_cold()
            return ours_once(cold=True)

        def theirs_cold() -> float:
            packages.make_cold()
            try:
                return theirs_once(install=True)
            finally:
                packages.restore()

        try:
            mine, recipe = measure(ctx.cold_runs, ours_cold, theirs_cold)
        finally:
            packages.restore()
        results.append(Result(
            row="Desktop ready, cold", what=f"to the first VNC frame ({len(packages.removable)} packages absent)",
            ours=mine, theirs=recipe, ours_label="`%vnc start` (no recommends)",
            theirs_label="`apt-get install xfce4 xfce4-terminal` with recommends + VNC server + steps",
            note="the .deb files were downloaded beforehand (both ways install from apt's cache), so the mirror's "
                 "speed is left out; what differs is what gets unpacked and configured"))
    return results


def _status_latency(ctx: Context, display: int) -> Result:
    from colabmagic.services.vnc import DESKTOP_PACKAGES, TIGERVNC_PACKAGES
    from colabmagic.system import installer

    runs = max(ctx.runs, 5)
    try:
        installer.ensure_packages([*TIGERVNC_PACKAGES, *DESKTOP_PACKAGES, *VNC_SERVER])
        _ours(ctx, display)
        mine, recipe = measure(runs, lambda: timed(lambda: ctx.cell("%vnc status")),
                               lambda: timed(lambda: subprocess.run(["vncserver", "-list"], capture_output=True)))
    finally:
        stop_services()
    return Result(row="latency: `%vnc status`", what="desktop running", ours=mine, theirs=recipe, unit="ms",
                  theirs_label="`vncserver -list`")


