"""A secret the user asks to see is shown once and is gone from the notebook saved afterwards.

A real notebook runs in a real kernel through nbclient (as Jupyter, VS Code
or Colab run it): %aria2 rpc, %vnc password, %tunnel ssh --password and
%tunnel jupyter --show-token each show their secret in their cell; the next
cell runs; the notebook is saved with nbformat and read back as text. Each
secret must have been in its cell's output when that cell ran (so the test
can fail) and must be nowhere in the saved .ipynb, where a note says how to
show it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from colabmagic.system import probes, secrets

VNC_PASSWORD = "Qz4vN8pL"


@pytest.fixture
def notebook_user(tmp_path: Path) -> Iterator[str]:
    name = "cmtestnb"
    made = subprocess.run(["useradd", "-M", "-d", str(tmp_path), "-s", "/bin/sh", name], capture_output=True)
    if made.returncode != 0:
        subprocess.run(["usermod", "-p", "!", name], check=True)
    yield name
    subprocess.run(["userdel", name], capture_output=True)


def _text(outputs: Any) -> str:
    return json.dumps(outputs)


def test_secrets_shown_on_request_are_not_in_the_saved_notebook(cm_home: Path, relay, tmp_path: Path,
                                                                notebook_user: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("colabmagic's sshd needs root")
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    secrets.store("VNC_PASSWORD", VNC_PASSWORD)  # what %vnc start stored; %vnc password shows it
    relay_opts = (f"--via ssh --relay {relay.relay} --relay-host-key '{relay.host_key}' "
                  f"--relay-key-file {relay.client_key}")
    (tmp_path / "dl").mkdir()
    cells = [
        "%load_ext colabmagic",
        f"%config Aria2Magics.download_dir = {str(tmp_path / 'dl')!r}\n"
        f"%config Aria2Magics.rpc_port = {probes.free_port()}\n%aria2 start",
        "%aria2 rpc",
        "%vnc password",
        f"%tunnel ssh {relay_opts} --remote-port {probes.free_port()} --password --user {notebook_user}",
        # --insecure: the relay gives an http:// address (refused without it); this test is about the display
        f"%tunnel jupyter {relay_opts} --remote-port {probes.free_port()} --show-token --insecure",
        "print('the next cell')",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    kernels = tmp_path / "kernels" / "cm-test"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colabmagic test", "language": "python"}))
    km = KernelManager(kernel_name="cm-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels.parent)]),
                       transport="ipc", connection_file=str(tmp_path / "kernel.json"))
    # Each secret as its cell showed it, read from colabmagic's 0600 files right after that cell ran.
    shown: Dict[str, str] = {}
    secret_cells = {2: "aria2 RPC secret", 3: "VNC password", 4: "ssh password", 5: "jupyter token"}
    files = {"aria2 RPC secret": "ARIA2_RPC_SECRET", "VNC password": "VNC_PASSWORD", "ssh password": "SSH_PASSWORD",
             "jupyter token": "JUPYTER_TOKEN"}

    def executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        name = secret_cells.get(cell_index)
        if name:
            value = secrets.load(files[name])
            assert value is not None, f"no {files[name]} in {sorted(p.name for p in secrets.secrets_dir().iterdir())}"
            shown[name] = value.reveal()
            assert shown[name] in _text(cell.outputs), f"{name} was not shown when asked for: {cell.outputs}"

    env = dict(os.environ, COLABMAGIC_HOME=str(cm_home), COLABMAGIC_OFFLINE="1")
    client = NotebookClient(nb, km=km, timeout=300, kernel_name="cm-test", on_cell_executed=executed,
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute(env=env, cwd=str(tmp_path))
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(saved))
    text = saved.read_text()
    assert len(shown) == 4
    still_there = [name for name, value in shown.items() if value in text]  # names only: no secret in test output
    assert still_there == [], f"still in the saved notebook: {still_there}"
    for index, again in ((2, "%aria2 rpc"), (3, "%vnc password"), (4, "--password"), (5, "--show-token")):
        note = _text(nb.cells[index].outputs)
        assert "now hidden" in note and again in note, note
