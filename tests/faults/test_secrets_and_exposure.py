"""With every service running: canary secrets appear nowhere they must not, and every listener is on loopback.

Canary values are set in the kernel's environment for the provider tokens
(NGROK_AUTHTOKEN, FRP_TOKEN: frp and ngrok really run, the stand-ins in
tests/standins, logged in with them), a relay key (RELAY_SSH_KEY, set but
unused: the relay key here is a file) and the VNC password; the generated
secrets (the ``--password`` SSH password, the aria2 RPC secret, rclone's rc
password) are read back from the product. None may be in any cell's output
(except the cells where the user asked to see the SSH password, here
twice), in the notebook saved from the session with nbformat, in any file
under $COLABMAGIC_HOME other than a 0600 file, on any process's command
line, or in the environment (/proc/PID/environ) of any colabmagic process:
keepers, daemons, their children, and a terminal opened inside the VNC
desktop (an XFCE autostart entry, started by the session as a user's
terminal would be). Then every TCP listener owned by one of our processes
must be bound to 127.0.0.1 or ::1.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import nbformat
from standins.frps_server import FrpsServer
from support.fault_helpers import free_display, relay_args, release_drive_mount

from colabmagic.system import probes, procfs, secrets, supervisor

STANDINS = Path(__file__).resolve().parents[1] / "standins"

CANARIES = {
    "NGROK_AUTHTOKEN": "canaryNgrok7Qw3xYz9Pp0Lk2Mn4Bv6",
    "FRP_TOKEN": "canaryFrp5Tg8Hj1Kl3Zx6Cv9Bn2",  # also the token our frps requires: frpc logs in with it
    "RELAY_SSH_KEY": "canaryRelayKey4Wd7Yh2Nm5Qs8",
    "VNC_PASSWORD": "Cn7vQ2xZ",  # VNC auth uses 8 characters
}
TERMINAL_MARK = "612.25"  # `sleep 612.25` in the desktop's terminal: how the test finds it


def _autostart_terminal(home: Path) -> None:
    """An XFCE autostart entry: the session starts a terminal (with a shell) as it would for the user."""
    folder = home / ".config" / "autostart"
    folder.mkdir(parents=True)
    (folder / "cm-terminal.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=colabmagic test terminal\n"
        f"Exec=xfce4-terminal --disable-server -x sh -c 'sleep {TERMINAL_MARK}'\n")


def _colabmagic_processes() -> Set[int]:
    """Every process colabmagic started: keepers, daemons, and all their descendants.

    Found by the running services' per-start tokens, by the recorded pids (sshd's title, written
    with setproctitle, hides its environment in /proc) and by descent from a keeper.
    """
    running = supervisor.running()
    tokens = {s.token for s in running if s.token}
    ours: Set[int] = set()
    for service in running:
        ours |= {p for p in (service.pid, service.keeper.pid if service.keeper else None) if p}
    parents = {}
    for pid in procfs.pids():
        parents[pid] = procfs.ppid(pid)
        if procfs.environ(pid).get(supervisor.TOKEN_ENV) in tokens:
            ours.add(pid)
    grew = True
    while grew:
        before = len(ours)
        ours |= {pid for pid, parent in parents.items() if parent in ours}
        grew = len(ours) > before
    return ours


def _terminal_pids() -> List[int]:
    return [pid for pid in procfs.pids() if f"sleep {TERMINAL_MARK}" in " ".join(procfs.cmdline(pid))]



def _cmdlines() -> Dict[int, str]:
    found = {}
    for pid in procfs.pids():
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


def test_secrets_never_leak_and_every_listener_is_on_loopback(ip, cm_home, relay, client_key, tmp_path,
                                                              desktop_home, figures, monkeypatch):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLABMAGIC_STANDIN_EDGE_DIR", str(tmp_path / "edge"))
    frps = FrpsServer(tmp_path)  # the user's frps, requiring the canary as its token
    frps.config.write_text(frps.config.read_text().replace(frps.token, CANARIES["FRP_TOKEN"]))
    frps.start()
    _autostart_terminal(desktop_home)
    site = tmp_path / "site"
    site.mkdir()
    page_port = probes.free_port()
    page = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(site),
                             str(page_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pub = Path(f"{client_key}.pub").read_text().strip()
    remote = tmp_path / "remote"
    remote.mkdir()
    mp = tmp_path / "mnt"
    (tmp_path / "dl").mkdir()

    asked = f"t = %tunnel ssh {relay_args(relay)} --key '{pub}' --password"
    cells = [
        asked,
        f"%vnc start --web --display :{free_display()}",
        f"%config Aria2Magics.download_dir = {str(tmp_path / 'dl')!r}",
        f"%config Aria2Magics.rpc_port = {probes.free_port()}",
        "%aria2 start",
        f"%config DriveMagics.remote = {str(remote)!r}",
        f"%%drive_sync --backend rclone --path {mp}\nopen({str(mp)!r} + '/a.txt', 'w').write('a')",
        f"%config TunnelMagics.frpc_path = {str(STANDINS / 'frpc')!r}",
        f"%tunnel {page_port} --via frp --server {frps.server} --proto tcp --name web-frp",
        f"%config TunnelMagics.ngrok_path = {str(STANDINS / 'ngrok')!r}",
        f"%tunnel {page_port} --via ngrok --name web-ngrok",
        "t",
        asked.replace("t = ", ""),  # the same request again: the user asks again, so it may be shown again
        "%tunnel list",
        "%vnc status",
        "_colabmagic.vnc",
        "%aria2 status",
        "_colabmagic.aria2",
        "%colabmagic status",
        "%colabmagic logs sshd",
        "%colabmagic logs aria2",
        "%colabmagic logs vnc-xserver",
        "%colabmagic logs drive-rclone",
        "_colabmagic.sshd",
        "_colabmagic.drive",
    ]
    outputs = []
    try:
        for source in cells:
            c = ip.cell(source)
            shown = c.output + (repr(c.value) if c.value is not None else "")
            if hasattr(c.value, "_repr_html_"):
                shown += c.value._repr_html_() or ""
            outputs.append((source, shown))

        state = ip.user_ns["_colabmagic"]
        generated = {
            "ssh --password": state.sshd.password.reveal() if state.sshd.password else
            secrets.load("SSH_PASSWORD").reveal() if secrets.load("SSH_PASSWORD") else "",
            "aria2 RPC secret": state.aria2.secret().reveal(),
            "rclone rc password": secrets.load("drive_rc").reveal() if secrets.load("drive_rc") else "",
        }
        watched = {**CANARIES, **{k: v for k, v in generated.items() if v}}
        assert len(watched) == 7, sorted(watched)
        assert state.vnc.password.reveal() == CANARIES["VNC_PASSWORD"]  # the canary really is the password in use

        leaks: List[Dict[str, str]] = []
        places = 0
        for source, shown in outputs:
            for name, value in watched.items():
                places += 1
                if value in shown and not (source.endswith("--password") and name == "ssh --password"):
                    leaks.append({"where": f"output of {source.splitlines()[0][:60]!r}", "secret": name})

        nb = nbformat.v4.new_notebook()
        for source, shown in outputs:
            cell = nbformat.v4.new_code_cell(source)
            text = shown if not source.endswith("--password") else shown.replace(watched["ssh --password"], "<asked for>")
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
            nb.cells.append(cell)
        for entry in ip.history_manager.get_range(output=False):
            nb.cells.append(nbformat.v4.new_code_cell(entry[2]))
        saved = tmp_path / "session.ipynb"
        nbformat.write(nb, str(saved))
        text = saved.read_text()
        for name, value in watched.items():
            places += 1
            if value in text:
                leaks.append({"where": "saved notebook", "secret": name})

        secret_files = []
        for path in cm_home.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            for name, value in watched.items():
                places += 1
                if value.encode() in data:
                    mode = stat.S_IMODE(path.stat().st_mode)
                    if "logs" in path.parts or mode != 0o600:
                        leaks.append({"where": f"{path.relative_to(cm_home)} (mode {oct(mode)})", "secret": name})
                    else:
                        secret_files.append(str(path.relative_to(cm_home)))

        for pid, cmdline in _cmdlines().items():
            for name, value in watched.items():
                places += 1
                if value in cmdline:
                    leaks.append({"where": f"/proc/{pid}/cmdline", "secret": name})

        # The environment of every process of ours, and of a terminal a desktop user opened.
        assert probes.wait_for(lambda: len(_terminal_pids()) >= 1, 60), "the desktop's terminal did not start"
        terminal = set(_terminal_pids())
        terminal |= {procfs.ppid(pid) for pid in terminal if procfs.ppid(pid)}  # the xfce4-terminal around it
        ours = _colabmagic_processes()
        assert terminal <= ours, "the desktop's terminal does not descend from our session"
        environs = 0
        for pid in sorted(ours):
            try:
                raw = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue  # exited meanwhile
            environs += 1
            for name, value in watched.items():
                places += 1
                if value.encode() in raw:
                    comm = " ".join(procfs.cmdline(pid))[:60]
                    leaks.append({"where": f"/proc/{pid}/environ ({comm})", "secret": name})
        print(f"  environments read: {environs} processes of ours (terminal in the desktop: {sorted(terminal)})")
        assert environs >= 15
        figures.secrets(places, leaks, kinds=["output", "saved notebook", "files", "cmdline", "environ"])
        print(f"  secrets held only in 0600 files: {sorted(set(secret_files))}")
        assert leaks == [], [leak["where"] for leak in leaks]
        assert secret_files, "the generated secrets must be kept somewhere (0600)"

        ours = set()
        for service in supervisor.running():
            if service.token:
                ours.update(procfs.processes_with_env(supervisor.TOKEN_ENV, service.token))
            ours.update(p for p in (service.pid,) if p)
        owners = procfs.socket_owners()
        checked, off = 0, []
        for address, port, inode in procfs.listeners():
            pid = owners.get(inode)
            if pid in ours:
                checked += 1
                if address not in ("127.0.0.1", "::1"):
                    ident = procfs.ProcessIdentity.of(pid)
                    off.append(f"{address}:{port} {' '.join(ident.cmdline)[:80] if ident else pid}")
        names = sorted(s.name for s in supervisor.running())
        print(f"  services running: {names}")
        figures.listeners(checked, off)
        assert {"sshd", "tunnel-ssh", "vnc-xserver", "vnc-web", "aria2", "drive-rclone", "tunnel-web-frp",
                "tunnel-web-ngrok"} <= set(names)
        assert checked >= 5 and off == []
    finally:
        release_drive_mount(mp)
        page.terminate()
        frps.stop()
