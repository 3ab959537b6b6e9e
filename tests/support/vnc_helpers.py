"""Independent checks for the %vnc tests: vncdotool and raw-RFB clients, image and process checks.

These are separate from the product's code: vncdotool runs in a child
process (password on stdin), the RFB handshake is read raw, and images are
judged with Pillow.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Sequence, Tuple

from colabmagic.system import procfs, supervisor

RFB_CAPTURE = r"""
import sys, warnings
warnings.simplefilter("ignore")
from vncdotool import api
port, out = sys.argv[1], sys.argv[2]
password = sys.stdin.readline().rstrip("\n")
try:
    client = api.connect("127.0.0.1::" + port, password=password, timeout=30)
    client.captureScreen(out)
    client.disconnect()
except Exception as exc:
    print("FAILED %s: %s" % (type(exc).__name__, exc))
    sys.exit(1)
finally:
    api.shutdown()
"""

def rfb_capture(port: int, password: str, out: Path) -> Tuple[int, str]:
    """Capture with vncdotool in a child process; (exit status, its output)."""
    result = subprocess.run(
        [sys.executable, "-c", RFB_CAPTURE, str(port), str(out)],
        input=password + "\n", capture_output=True, text=True, timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


def security_types(port: int) -> List[int]:
    """The security types an RFB 3.8 server offers (read raw, before any authentication)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(10)
        version = _recv_exact(sock, 12)
        assert version.startswith(b"RFB "), version
        sock.sendall(b"RFB 003.008\n")
        count = _recv_exact(sock, 1)[0]
        assert count > 0, "the server refused the connection before offering security types"
        return list(_recv_exact(sock, count))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def vnc_pids() -> List[int]:
    """Live processes of the running desktop, found by each step's token."""
    found: List[int] = []
    for name in ("vnc-xserver", "vnc-session", "vnc-web"):
        token = supervisor.Service(name).token
        if token:
            found.extend(procfs.processes_with_env(supervisor.TOKEN_ENV, token))
    return found


def display_processes(display: int) -> List[Tuple[int, str]]:
    """Live processes tied to X display ``:display`` by environment or command line, token or not
    (catches anything that escaped with a cleaned environment)."""
    found = []
    for pid in procfs.pids():
        if pid == os.getpid() or not procfs.is_running(pid):
            continue
        cmd = " ".join(procfs.cmdline(pid))
        if procfs.environ(pid).get("DISPLAY") == f":{display}" or f"Xvnc :{display} " in cmd:
            found.append((pid, cmd[:80]))
    return found


def desktop_processes(tokens: List[str]) -> List[Tuple[int, str]]:
    """Live processes carrying any of ``tokens`` (what a start of ours left running)."""
    left = []
    for token in tokens:
        for pid in procfs.processes_with_env(supervisor.TOKEN_ENV, token):
            left.append((pid, " ".join(procfs.cmdline(pid))[:80]))
    return left


def looks_like_xfce(png: Path) -> None:
    """Assert a capture shows a painted desktop with XFCE's panel strip along the top."""
    from PIL import Image, ImageStat

    image = Image.open(png).convert("RGB")
    width, height = image.size
    overall = ImageStat.Stat(image).stddev
    assert max(overall) > 15, f"the capture is (nearly) blank: stddev {overall}"
    panel = ImageStat.Stat(image.crop((0, 2, width, 20))).mean
    background = ImageStat.Stat(image.crop((width // 4, height // 4, 3 * width // 4, 3 * height // 4))).mean
    gap = max(abs(a - b) for a, b in zip(panel, background))
    assert gap > 40, f"no panel strip at the top: panel {panel} vs background {background}"


def image_distance(a: object, b: object) -> float:
    """Mean absolute difference (0-255) of two images shrunk to 160x100 (small text changes wash out)."""
    from PIL import Image, ImageChops, ImageStat

    left = Image.open(a).convert("RGB").resize((160, 100))  # type: ignore[arg-type]
    right = Image.open(b).convert("RGB").resize((160, 100))  # type: ignore[arg-type]
    return float(sum(ImageStat.Stat(ImageChops.difference(left, right)).mean) / 3)


def xfce_problem(png: Path) -> str:
    """Why ``png`` does not show the XFCE desktop yet, or "" when it does."""
    try:
        looks_like_xfce(png)
    except AssertionError as exc:
        return str(exc)
    return ""


def capture_until_xfce(port: int, password: str, out: Path, timeout: float = 40.0) -> None:
    """Capture with vncdotool until the panel is drawn (a bounded wait: the panel paints as its
    plugins load); fail with the last reason."""
    deadline = time.monotonic() + timeout
    while True:
        code, text = rfb_capture(port, password, out)
        if code != 0:
            # A client timeout through a just-started tunnel is retried until the deadline.
            assert time.monotonic() < deadline, f"the VNC client could not capture: {text}"
            time.sleep(1.0)
            continue
        problem = xfce_problem(out)
        if not problem:
            return
        if time.monotonic() > deadline:
            raise AssertionError(problem)
        time.sleep(0.5)


class HeadlessChromium:
    """Headless Chromium driven over the DevTools protocol (loopback only, throw-away profile)."""

    def __init__(self, profile: Path, width: int, height: int, extra: Sequence[str] = ()):
        self.profile = profile
        self.proc = subprocess.Popen(
            ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--window-size={width},{height}", *extra, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ws = None
        self.next_id = 0
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise AssertionError("headless Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t.get("type") == "page")
        import websocket

        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)

    def call(self, method: str, **params: object) -> dict:
        import json

        assert self.ws is not None
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, out: Path) -> Path:
        import base64

        data = self.call("Page.captureScreenshot", format="png")["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            import os
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
