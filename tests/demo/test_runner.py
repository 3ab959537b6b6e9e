"""The demo runner's own verdicts, on small notebooks: a failing cell, a leaked secret, a process left behind.

Each case runs ``python -m colabmagic.demo --notebook X`` for real (a fresh
kernel through nbclient, HTML through nbconvert) and checks the exit status,
that the HTML is still written, and what the runner says (never the secret).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, cells: List[str]) -> subprocess.CompletedProcess:
    if os.geteuid() != 0:
        pytest.skip("the demo runs as root")
    notebook = tmp_path / "case.ipynb"
    notebook.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": f"c{n}", "metadata": {}, "execution_count": None, "outputs": [],
                   "source": source} for n, source in enumerate(cells)],
    }))
    env = dict(os.environ)
    env.pop("COLABMAGIC_HOME", None)  # the runner makes its own throwaway home
    return subprocess.run([sys.executable, "-m", "colabmagic.demo", "--notebook", str(notebook),
                           "--output", str(tmp_path / "out")], cwd=str(REPO), env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_a_failing_cell_exits_1_and_still_writes_the_html(tmp_path: Path) -> None:
    r = _run(tmp_path, ["print('before')", "1 / 0", "print('never')"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "A CELL FAILED" in r.stderr and "ZeroDivisionError" in r.stderr
    html = (tmp_path / "out" / "case.html").read_text()
    assert "before" in html and "ZeroDivisionError" in html
    executed = json.loads((tmp_path / "out" / "case.executed.ipynb").read_text())
    assert executed["cells"][2]["outputs"] == [] and not executed["cells"][2]["execution_count"]  # stopped at the failure


def test_a_secret_in_the_output_exits_2_and_is_named_not_shown(tmp_path: Path) -> None:
    r = _run(tmp_path, [
        "from colabmagic.system import secrets\n"
        "secrets.store('DEMO_TOKEN', secrets.generate_token())\n"
        "secrets.store('QUIET_TOKEN', secrets.generate_token())",
        "print('the token is', secrets.load('DEMO_TOKEN').reveal())",
    ])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "SECRET LEAK: secrets/DEMO_TOKEN appears in case.html" in r.stderr
    assert "secrets/DEMO_TOKEN appears in case.executed.ipynb" in r.stderr
    assert "QUIET_TOKEN" not in r.stderr  # stored but never shown: not a leak
    leaked = (tmp_path / "out" / "case.html").read_text().split("the token is ")[1].split()[0]
    assert leaked not in r.stdout + r.stderr


def test_a_process_left_running_is_ended_and_exits_3(tmp_path: Path) -> None:
    marker = tmp_path / "sleeper-started"
    r = _run(tmp_path, [
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        f"open({str(marker)!r}, 'w').write(str(p.pid))",
    ])
    assert r.returncode == 3, r.stdout + r.stderr
    assert "left running after the notebook" in r.stderr and "sleep" in r.stderr
    pid = int(marker.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
            "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]:
        time.sleep(0.1)
    alive = Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    assert not alive


def test_a_clean_notebook_exits_0_and_leaves_no_throwaway_folder(tmp_path: Path) -> None:
    r = _run(tmp_path, ["%load_ext colabmagic", "import os; print(os.environ['COLABMAGIC_HOME'])",
                        "%colabmagic status"])
    assert r.returncode == 0, r.stdout + r.stderr
    html = (tmp_path / "out" / "case.html").read_text()
    assert "(no services running)" in html
    home = Path(re.search(r"\(COLABMAGIC_HOME=([^,\s]+), offline mode\)", r.stdout).group(1))
    assert str(home) in html  # the kernel ran with the throwaway home
    assert home.parent.name.startswith("colabmagic-demo-") and not home.parent.exists()


def test_services_of_a_failed_run_are_stopped_the_products_way(tmp_path: Path) -> None:
    pidfile = tmp_path / "aria2-pid"
    r = _run(tmp_path, [
        "%load_ext colabmagic",
        f"%config Aria2Magics.download_dir = {str(tmp_path / 'dl')!r}",
        "a = %aria2 start",
        f"open({str(pidfile)!r}, 'w').write(str(a.service.pid))",
        "1 / 0  # the tour breaks before its teardown",
    ])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "left running after the notebook (now ended): service aria2" in r.stderr
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
