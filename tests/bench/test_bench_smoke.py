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
    readme = tmp_path / "README.md"
    begin = "<!-- benchmark results: written by python -m benchmarks --readme, never by hand -->"
    end = "<!-- end of benchmark results -->"
    readme.write_text(f"# Project\n\n## Benchmarks\n\n{begin}\nan old table\n{end}\n\n## After\n")
    env = {**os.environ, "COLABMAGIC_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--rows", "load", "--runs", "1", "--quick", "--results", str(results),
         "--readme", str(readme)],
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
    assert r.stdout.endswith("\n" + written), "the file differs from what was printed"
    # The README gets the same text between its markers (without the title); the rest stays.
    text = readme.read_text()
    assert "an old table" not in text and text.startswith("# Project\n\n## Benchmarks\n\n" + begin)
    assert text.endswith(end + "\n\n## After\n")
    between = text.split(begin)[1].split(end)[0].strip()
    assert written.startswith("# colabmagic benchmarks\n") and between == written[len("# colabmagic benchmarks"):].strip()
