"""The benchmark harness: repeated side-by-side timings, their medians, and the one table they print.

A row names two ways to reach the same outcome (colabmagic's and the hand
recipe's). ``measure`` runs each several times, alternating them so a noisy
neighbour hurts both alike, and keeps every duration; ``Result`` turns them
into median, min and max and a ratio; ``table`` renders the results as
Markdown. Also here: the throwaway environment the rows run in (home,
offline mode, an IPython shell with colabmagic loaded) and the machine facts.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

# apt-get for the recipes' own steps: waits for the dpkg lock (other work may be installing), never asks.
APT_GET = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-q", "-y"]
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
MB = 1 << 20
GB = 1 << 30


@dataclass
class Result:
    """One row: durations (seconds) of colabmagic's way and of the recipe's way."""

    row: str
    what: str
    ours: List[float]
    theirs: List[float]
    ours_label: str = ""
    theirs_label: str = ""
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> Optional[float]:
        if not self.ours or not self.theirs:
            return None
        ours, theirs = statistics.median(self.ours), statistics.median(self.theirs)
        return theirs / ours if ours > 0 else None


@dataclass
class Context:
    """What every row gets: run count, sizes, a work folder, and a way to say what it is about to do."""

    runs: int
    quick: bool
    size: int  # bytes moved by the throughput, download and sync rows
    work: Path
    cold_runs: int = 1
    say: Callable[[str], None] = print
    shell: Any = None
    cleanups: List[Callable[[], None]] = field(default_factory=list)

    def folder(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work))
        return path

    def fresh_home(self, name: str) -> Path:
        """A new COLABMAGIC_HOME (nothing generated, nothing running), under root's cache like /var/lib."""
        home = self.folder(f"home-{name}")
        os.chmod(home, 0o700)
        os.environ["COLABMAGIC_HOME"] = str(home)
        return home

    def cell(self, source: str) -> Any:
        """Run ``_bench = <source>`` in the user's syntax, its output kept out of the table; the value.

        A failed cell is an error of the benchmark (its output is shown then).
        """
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            result = self.shell.run_cell(f"_bench = {source}", store_history=False)
        error = result.error_in_exec or result.error_before_exec
        if error is not None:
            raise RuntimeError(f"cell failed: {source!r}: {error}\n{out.getvalue()[-1500:]}") from error
        return self.shell.user_ns.get("_bench")


def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def measure(runs: int, ours: Callable[[], float], theirs: Callable[[], float]) -> tuple:
    """Alternate the two ways ``runs`` times (ours first on even runs, theirs first on odd ones)."""
    mine: List[float] = []
    recipe: List[float] = []
    for i in range(runs):
        order = [(ours, mine), (theirs, recipe)]
        if i % 2:
            order.reverse()
        for action, into in order:
            into.append(action())
    return mine, recipe


def _span(values: Sequence[float], unit: str) -> str:
    if not values:
        return "-"
    med, low, high = statistics.median(values), min(values), max(values)
    if unit == "ms":
        return f"{med * 1000:.1f} ms ({low * 1000:.1f}–{high * 1000:.1f})"
    if unit == "MB":
        return f"{med:.1f} MB ({low:.1f}–{high:.1f})"
    return f"{med:.2f} s ({low:.2f}–{high:.2f})"


def ratio_text(result: Result) -> str:
    ratio = result.ratio
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def table(results: Sequence[Result]) -> str:
    """The results as one Markdown table; ratio = recipe / colabmagic (above 1.0x colabmagic is faster)."""
    lines = [
        "| row | measured | colabmagic: median (min–max) | recipe: median (min–max) | ratio | runs |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ours = _span(r.ours, r.unit) + (f" {r.ours_label}" if r.ours_label else "")
        theirs = _span(r.theirs, r.unit) + (f" {r.theirs_label}" if r.theirs_label else "")
        runs = f"{len(r.ours)}/{len(r.theirs)}"
        lines.append(f"| {r.row} | {r.what} | {ours} | {theirs} | **{ratio_text(r)}** | {runs} |")
    notes = [f"- {r.row}: {r.note}" for r in results if r.note]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def machine() -> Dict[str, str]:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    return {
        "load": load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "uname": uname or platform.platform(),
        "cpus": f"{os.cpu_count()} ({model})" if model else str(os.cpu_count()),
        "ram": mem,
        "python": sys.version.split()[0],
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was around the measurements."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def new_shell() -> Any:
    """An IPython shell with colabmagic loaded, as a notebook kernel would have it."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "colabmagic")
    return shell


def stop_services() -> None:
    """Stop every service under the current COLABMAGIC_HOME, newest first."""
    from colabmagic.system import supervisor

    for svc in sorted(supervisor.running(), key=lambda s: s.started_at, reverse=True):
        svc.stop()


def run_quiet(argv: List[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a recipe step; a failed step is an error of the benchmark, with its output."""
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed ({result.returncode}): "
                           f"{(result.stdout + result.stderr)[-800:]}")
    return result


def which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise RuntimeError(f"{name} is not installed")
    return found


def fresh_page_cache() -> None:
    """Start a row that moves GiBs from the memory state it would have run alone in: what earlier rows
    wrote is written out and the kernel's page cache emptied (root only; elsewhere it is left as is).

    Measured: the Drive row after the download rows (several GiB left in the page cache) took 2.67 s
    against 1.77 s with the cache emptied first, while its recipe took 3.55 s either way, so the order
    of the rows, not colabmagic, decided the ratio. Each way still starts from its own data written
    and in the cache, as the rows say.
    """
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
    except OSError:
        pass
