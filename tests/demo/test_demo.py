"""The one-command demo: ``python -m colabmagic.demo`` runs the quickstart notebook headless and exits 0.

The executed HTML must show what a newcomer came to see: the desktop
screenshot (a PNG of a drawn desktop), the output of a command run over SSH
with the real client, each download's checksum matching its source, and the
verified Drive sync table; and no secret kept under the demo's
``$COLABMAGIC_HOME`` may appear in the HTML or the executed notebook.
Nothing the run started may still be running afterwards.
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List

import pytest

from colabmagic.demo import defaults
from colabmagic.demo.webserver import make_file

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # one full run of the quickstart (about a minute; still run by make test)


class _Page(HTMLParser):
    """The text of the cells' outputs (not their source code), and every <img> source in them."""

    def __init__(self) -> None:
        super().__init__()
        self.text: List[str] = []
        self.images: List[str] = []
        self._divs = 0
        self._output_at = 0  # div depth of the output area we are in (0: not in one)

    def handle_starttag(self, tag: str, attrs: List[Any]) -> None:
        if tag == "div":
            self._divs += 1
            classes = dict(attrs).get("class") or ""
            if not self._output_at and "jp-OutputArea-output" in classes.split():
                self._output_at = self._divs
        if tag == "img" and self._output_at:
            self.images.extend(v for k, v in attrs if k == "src" and v)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            if self._divs == self._output_at:
                self._output_at = 0
                self.text.append("\n")
            self._divs -= 1

    def handle_data(self, data: str) -> None:
        if self._output_at:
            self.text.append(data)


def _marked_processes(marker: str) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in env:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """One run of the demo as `make demo` does it, with a home the test can read afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the demo runs as root")
    root = tmp_path_factory.mktemp("demo")
    home = root / "home"
    out = root / "out"
    env = dict(os.environ, COLABMAGIC_HOME=str(home), COLABMAGIC_OFFLINE="1")
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, "-m", "colabmagic.demo", "--output", str(out)], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    html = out / "quickstart.html"
    page = _Page()
    if html.exists():
        page.feed(html.read_text(encoding="utf-8"))
    return {"proc": proc, "home": home, "out": out, "html": html, "page": page,
            "text": re.sub(r"[ \t]+", " ", "".join(page.text))}


def test_demo_exits_zero_and_writes_html(demo_run: Dict[str, Any]) -> None:
    proc = demo_run["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert f"HTML: {demo_run['html']}" in proc.stdout
    executed = json.loads((demo_run["out"] / "quickstart.executed.ipynb").read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] for c in code)  # every code cell ran
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert errors == []


def test_html_shows_the_desktop_screenshot(demo_run: Dict[str, Any]) -> None:
    from PIL import Image, ImageStat

    pngs = [src for src in demo_run["page"].images if src.startswith("data:image/png;base64,")]
    assert pngs, "no inline PNG in the HTML"
    image = Image.open(io.BytesIO(base64.b64decode(pngs[0].split(",", 1)[1])))
    assert image.size == (1280, 800)  # VncMagics.geometry's default
    # a drawn desktop, not a blank or single-colour frame
    stat = ImageStat.Stat(image.convert("L"))
    assert stat.stddev[0] > 10
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_html_shows_the_command_run_over_ssh(demo_run: Dict[str, Any]) -> None:
    text = demo_run["text"]
    assert "$ ssh colabmagic 'nvidia-smi || uname -a" in text
    uname = platform.uname()
    assert f"Linux {uname.node} {uname.release}" in text  # uname -a, run in the SSH session
    assert re.search(r"SSH_CONNECTION=127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+", text)  # set only in an SSH session
    pinned = re.search(r"known_hosts: (\S+ ssh-ed25519 \S+)", text)
    assert pinned and f"1. Append to ~/.ssh/known_hosts (pins this machine's host key):\n{pinned.group(1)}" in text


def test_html_shows_each_download_checksum_matching_the_source(demo_run: Dict[str, Any], tmp_path: Path) -> None:
    text = demo_run["text"]
    # the sources' checksums, computed here from the same reproducible bytes
    http_sha = make_file(str(tmp_path / "a"), defaults.FILE_SIZE, seed=1)
    swarm_sha = make_file(str(tmp_path / "b"), defaults.SWARM_SIZE, seed=2)
    for name, digest in (("sample.bin", http_sha), ("shared.bin", swarm_sha)):
        assert re.search(rf"downloaded \S+/{name}\n sha256 {digest}\n source {digest}\nchecksum matches the source",
                         text), name


def test_html_shows_the_verified_sync_table(demo_run: Dict[str, Any], tmp_path: Path) -> None:
    text = demo_run["text"]
    assert re.search(r"verified 2 changed files \([\d.]+ MB\) in [\d.]+s by sha256", text)
    for name in ("quickstart/notes.txt", "quickstart/sample.bin"):
        assert re.search(rf"{re.escape(name)}\s*created\s*[\d.]+ [KMG]?B\s*verified\s*sha256", text), name
    http_sha = make_file(str(tmp_path / "a"), defaults.FILE_SIZE, seed=1)
    assert re.search(rf"quickstart/sample\.bin\s*{defaults.FILE_SIZE}\s*{http_sha}", text)  # read on the remote


def test_no_secret_in_the_html_or_the_executed_notebook(demo_run: Dict[str, Any]) -> None:
    home: Path = demo_run["home"]
    kept = {p.name: p.read_text().strip() for p in (home / "secrets").iterdir()}
    assert {"VNC_PASSWORD", "ARIA2_RPC_SECRET"} <= set(kept)
    for path in (home / "secrets").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    keys = [p for p in home.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()[:100]]
    assert keys  # sshd host key, relay and laptop keys
    for key in keys:
        body = "".join(key.read_text().splitlines()[1:-1])
        kept[str(key.relative_to(home))] = body[len(body) // 2:]  # the half that holds the private part
    outputs = [demo_run["html"].read_text(encoding="utf-8"),
               (demo_run["out"] / "quickstart.executed.ipynb").read_text(encoding="utf-8")]
    for name, value in kept.items():
        assert value and all(value not in output for output in outputs), f"{name} appears in the demo output"
    assert "none in the output" in demo_run["proc"].stdout


def test_nothing_is_left_running(demo_run: Dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    proc = demo_run["proc"]
    assert "left running" not in proc.stderr
    monkeypatch.setenv("COLABMAGIC_HOME", str(demo_run["home"]))
    from colabmagic.system import supervisor

    assert supervisor.running() == []
    home = str(demo_run["home"])
    assert _marked_processes(f"COLABMAGIC_HOME={home}") == []
    assert home not in Path("/proc/self/mounts").read_text()
