"""Row 6 (first half): ``%load_ext colabmagic`` against bare IPython, in fresh processes: time and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

from .harness import Context, Result

PROBE = r"""
import json, sys, time
began = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
if sys.argv[1] == "1":
    shell.run_line_magic("load_ext", "colabmagic")
took = time.perf_counter() - began
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec.
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"seconds": took, "rss_mb": int(hwm.split()[1]) / 1024}))
"""


def _probe(load: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, "1" if load else "0"], capture_output=True, text=True,
                         check=True, stdin=subprocess.DEVNULL).stdout
    return json.loads(out.strip().splitlines()[-1])


def _compile_bytecode() -> None:
    """Compile colabmagic's modules as ``pip install`` does for a wheel. IPython's own were compiled when pip
    installed it; a source checkout (or PYTHONDONTWRITEBYTECODE=1, as on this machine) would otherwise
    compile colabmagic from source in every probe, which no installed copy does."""
    import colabmagic

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(colabmagic.__file__).parent)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)


def run(ctx: Context, rows: List[str]) -> List[Result]:
    runs = max(ctx.runs, 15)  # a fresh interpreter start varies by tens of ms; the load adds a few
    _compile_bytecode()
    with_ext: List[dict] = []
    bare: List[dict] = []
    for i in range(runs):
        for load in ((True, False) if i % 2 == 0 else (False, True)):
            (with_ext if load else bare).append(_probe(load))
    return [
        Result(row="`%load_ext colabmagic`: time", what="IPython shell start + load, fresh process",
               ours=[p["seconds"] for p in with_ext], theirs=[p["seconds"] for p in bare], unit="ms",
               theirs_label="bare IPython",
               note="ratio below 1.0x = the load's cost over bare IPython (the shell start alone); colabmagic's "
                    "bytecode is compiled first, as pip does when it installs the wheel"),
        Result(row="`%load_ext colabmagic`: memory", what="peak RSS of that process",
               ours=[p["rss_mb"] for p in with_ext], theirs=[p["rss_mb"] for p in bare], unit="MB",
               theirs_label="bare IPython"),
    ]
