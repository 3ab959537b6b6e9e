"""``python -m colabmagic.demo``: run the quickstart notebook headless and write an executed HTML copy.

It executes ``notebooks/quickstart.ipynb`` in a fresh kernel (nbclient) with
offline mode on and a throwaway ``$COLABMAGIC_HOME`` (unless you set one),
writes the executed notebook and an HTML copy (nbconvert), prints where they
are, then checks the result: no cell failed, no secret kept under the home
(passwords, tokens, RPC secrets, private keys) appears in the HTML or the
executed notebook, and nothing the run started is still running. Exit
status: 0 all good, 1 a cell failed, 2 a secret leaked, 3 processes or
mounts were left behind (they are ended), 4 the run could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
KERNEL_NAME = "colabmagic-demo"
RUN_ENV = "COLABMAGIC_DEMO_RUN"  # marks every process this run starts (the kernel passes it on)
# key=value lines in generated config files whose value is a secret (aria2's rpc-secret, ...)
SECRET_KEYS = re.compile(r"^\s*([A-Za-z0-9_.-]*(?:secret|password|passwd|token|pass)[A-Za-z0-9_.-]*)\s*[=:]\s*(\S.*?)\s*$",
                         re.IGNORECASE | re.MULTILINE)
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(.*?)-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
MIN_SECRET = 6  # shorter values would match by chance in a page full of base64


def _skip_slow_optional_imports() -> None:
    """nbformat imports jsonschema, whose optional IRI format checker (rfc3987-syntax, pulled in by
    jupyter-events) compiles dozens of grammars at import: seconds to tens of seconds. Notebooks have
    no IRI fields, so it is declined; jsonschema treats the missing module as absent."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m colabmagic.demo", description="Run the quickstart notebook headless on the embedded defaults and write an executed HTML copy.")
    parser.add_argument("--notebook", default=str(NOTEBOOK), help="the notebook to run (default: the quickstart)")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="where to write the executed .ipynb and .html (default: next to the notebook)")
    parser.add_argument("--cell-timeout", type=float, default=900.0, help="seconds one cell may take")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway $COLABMAGIC_HOME for inspection")
    return parser.parse_args(argv)


def _kernel_dir(root: Path) -> Path:
    """A kernelspec for this very interpreter, so the notebook runs where colabmagic is installed."""
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colabmagic demo", "language": "python",
    }))
    return root / "kernels"


def _log(message: str) -> None:
    print(message, flush=True)


def _cell_title(cell: Any) -> str:
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    return first if len(first) <= 90 else first[:87] + "..."


def execute(notebook: Path, env: Dict[str, str], workdir: Path, cell_timeout: float) -> Tuple[Any, Optional[str]]:
    """Run every cell in a fresh kernel; returns the executed notebook and the first error (or None)."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(notebook), as_version=4)
    ksm = KernelSpecManager(kernel_dirs=[str(_kernel_dir(workdir))])
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm, transport="ipc",
                       connection_file=str(workdir / "kernel.json"))
    started: Dict[int, float] = {}
    total = sum(1 for c in nb.cells if c.cell_type == "code")

    def on_start(cell: Any, cell_index: int) -> None:
        if cell.cell_type != "code":
            return
        started[cell_index] = time.monotonic()
        _log(f"[{len(started)}/{total}] {_cell_title(cell)}")

    def on_done(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell.cell_type != "code":
            return
        took = time.monotonic() - started.get(cell_index, time.monotonic())
        status = (execute_reply or {}).get("content", {}).get("status", "?")
        if took >= 5 or status != "ok":
            _log(f"      {status} in {took:.0f}s")

    client = NotebookClient(nb, km=km, timeout=int(cell_timeout), kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(workdir)}},
                            on_cell_start=on_start, on_cell_executed=on_done)
    error: Optional[str] = None
    try:
        client.execute(env=env, cwd=str(workdir))
    except CellExecutionError as exc:
        error = str(exc)
    except Exception as exc:  # kernel died, timeout, ...
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if km.has_kernel:  # a kernel manager handed to nbclient is ours to shut down
            km.shutdown_kernel(now=False)
    return nb, error


def write_outputs(nb: Any, notebook: Path, output: Path) -> Tuple[Path, Path]:
    import nbformat
    from nbconvert import HTMLExporter

    output.mkdir(parents=True, exist_ok=True)
    stem = notebook.stem
    executed = output / f"{stem}.executed.ipynb"
    nbformat.write(nb, str(executed))
    body, _ = HTMLExporter().from_notebook_node(nb)
    html = output / f"{stem}.html"
    html.write_text(body, encoding="utf-8")
    return executed, html


def secrets_under(home: Path) -> Dict[str, str]:
    """Every secret colabmagic kept under ``home``: label -> value (0600 files, config secrets, private keys)."""
    found: Dict[str, str] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            if path.stat().st_mode & 0o077:
                continue  # only owner-only files hold secrets
            raw = path.read_bytes()
        except OSError:
            continue
        if len(raw) > 1 << 20 or b"\0" in raw:
            continue
        text = raw.decode("utf-8", "replace")
        rel = str(path.relative_to(home))
        if path.parent.name == "secrets":
            value = text.strip()
            if len(value) >= MIN_SECRET:
                found[rel] = value
            continue
        for match in PRIVATE_KEY.finditer(text):
            for n, line in enumerate(match.group(1).split()):
                if len(line) >= 16:
                    found[f"{rel} (private key line {n + 1})"] = line
        for key, value in SECRET_KEYS.findall(text):
            value = value.strip().strip("'\"")
            if len(value) >= MIN_SECRET and "/" not in value:
                found[f"{rel} ({key})"] = value
    return found


def leaks(secrets: Dict[str, str], files: List[Path]) -> List[str]:
    """Which secrets appear in which file (named by label, never by value)."""
    found = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for label, value in secrets.items():
            if value in text:
                found.append(f"{label} appears in {path.name}")
    return found


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _ours(svc: Any, needle: bytes) -> bool:
    keeper = getattr(svc, "keeper", None)
    return any(pid and _environ_has(pid, needle) for pid in (svc.pid, getattr(keeper, "pid", None)))


def leftovers(home: Path, workdir: Path, run_id: str) -> List[str]:
    """End what this run left behind and say what it was.

    Only what carries this run's own marker (``RUN_ENV=run_id``, inherited from the kernel by
    everything the notebook started) is touched; services are stopped the product's way first.
    """
    left: List[str] = []
    needle = f"{RUN_ENV}={run_id}".encode()
    os.environ["COLABMAGIC_HOME"] = str(home)
    from ..system import supervisor

    for svc in sorted(supervisor.running(), key=lambda s: s.started_at, reverse=True):
        if _ours(svc, needle):
            left.append(f"service {svc.name} (pid {svc.pid})")
            svc.stop()
    me = os.getpid()
    strays = [int(p.name) for p in Path("/proc").iterdir()
              if p.name.isdigit() and int(p.name) != me and _environ_has(int(p.name), needle)]
    for pid in strays:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            left.append(f"process {name} (pid {pid})")
            os.kill(pid, signal.SIGTERM)
        except (OSError, ProcessLookupError):
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_environ_has(pid, needle) for pid in strays):
        time.sleep(0.1)
    for pid in strays:
        if _environ_has(pid, needle):
            try:
                os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
    for mountpoint in sorted(set(_mounts_under(workdir) + _mounts_under(home / "demo")), reverse=True):
        left.append(f"mount {mountpoint}")
        for argv in (["fusermount3", "-u", "-z", mountpoint], ["fusermount", "-u", "-z", mountpoint],
                     ["umount", "-l", mountpoint]):
            if not _mounts_under(Path(mountpoint)):
                break
            try:
                subprocess.run(argv, capture_output=True)
            except OSError:  # that tool is not installed; try the next
                pass
    return left


def _mounts_under(folder: Path) -> List[str]:
    found: List[str] = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point == str(folder) or point.startswith(str(folder) + "/"):
                found.append(point)
    return found


def _remove(folder: Path) -> None:
    """Delete the throwaway folder (lifting a guard colabmagic may have put on a bare mountpoint)."""
    for path in folder.rglob("*"):
        try:
            if path.is_dir() and not path.is_symlink():
                subprocess.run(["chattr", "-i", str(path)], capture_output=True)
                os.chmod(path, 0o700)
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse(argv)
    _skip_slow_optional_imports()
    notebook = Path(args.notebook).resolve()
    output = Path(args.output).resolve() if args.output else notebook.parent
    if not notebook.is_file():
        print(f"no notebook at {notebook}", file=sys.stderr)
        return 4
    if os.geteuid() != 0:
        print("the demo needs root (colabmagic installs packages and runs daemons): run it as root",
              file=sys.stderr)
        return 4
    user_home = os.environ.get("COLABMAGIC_HOME")
    workdir = Path(tempfile.mkdtemp(prefix="colabmagic-demo-"))
    os.chmod(workdir, 0o700)
    home = Path(user_home) if user_home else workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex
    env = dict(os.environ)
    env.update({
        "COLABMAGIC_HOME": str(home),
        "COLABMAGIC_OFFLINE": "1",
        "HOME": str(workdir / "user"),  # the desktop's first-run files land here, not in your home
        "PYTHONUNBUFFERED": "1",
        RUN_ENV: run_id,
    })
    (workdir / "user").mkdir(mode=0o700)
    for name in ("DISPLAY", "VNC_PASSWORD", "SSH_PUBLIC_KEY", "RELAY_SSH_KEY"):
        env.pop(name, None)
    _log(f"running {notebook} in a fresh kernel (COLABMAGIC_HOME={home}, offline mode)")
    began = time.monotonic()
    status = 0
    try:
        nb, error = execute(notebook, env, workdir, args.cell_timeout)
        executed, html = write_outputs(nb, notebook, output)
        took = time.monotonic() - began
        if error:
            print(f"\nA CELL FAILED after {took:.0f}s:\n{error.strip()[-3000:]}", file=sys.stderr)
            status = 1
        secrets = secrets_under(home)
        leaked = leaks(secrets, [html, executed])
        for line in leaked:
            print(f"SECRET LEAK: {line}", file=sys.stderr)
        if leaked and not status:
            status = 2
        left = leftovers(home, workdir, run_id)
        if left:
            print("left running after the notebook (now ended): " + "; ".join(left), file=sys.stderr)
            if not status:
                status = 3
        verdict = "ok" if status == 0 else "FAILED"
        found = f"{len(leaked)} of them in the output" if leaked else "none in the output"
        _log(f"\n{verdict}: {len(nb.cells)} cells in {took:.0f}s; {len(secrets)} secrets checked, {found}")
        _log(f"executed notebook: {executed}")
        _log(f"HTML: {html}")
    finally:
        if not args.keep:
            leftovers(home, workdir, run_id)
            _remove(workdir)  # the throwaway folder; a COLABMAGIC_HOME you set is yours and stays
        else:
            _log(f"kept {workdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
