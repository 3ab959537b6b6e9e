"""The benchmark command still works: one cheap row, smallest settings, one run, prints a ratio table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_row_prints_a_ratio_table(cm_home: Path, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    env = {**os.environ, "COLABMAGIC_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--rows", "load", "--runs", "1", "--quick", "--results", str(results)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    header = "| row | measured | colabmagic: median (min–max) | recipe: median (min–max) | ratio | runs |"
    assert header in r.stdout
    rows = [line for line in r.stdout.splitlines() if line.startswith("| `%load_ext colabmagic`")]
    assert len(rows) == 2
    for line in rows:
        ratio = line.split("|")[5].strip()
        assert re.fullmatch(r"\*\*\d+\.\d\dx\*\*", ratio), line  # a ratio, not a speed
    assert "/s" not in r.stdout.split(header)[1]
    written = results.read_text()
    assert header in written and "CPUs:" in written and "machine:" in written
