"""``python -m benchmarks [--rows ssh,aria2] [--runs N] [--quick]``: run the rows and print one ratio table."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .harness import GB, MB, Context, Result, load_average, machine, new_shell, table

# Row name -> the group that measures it (groups share their set-up: a relay, a server, a mount).
GROUPS: Dict[str, str] = {
    "load": "load",
    "ssh": "ssh", "ssh-cold": "ssh", "ssh-identity": "ssh", "throughput": "ssh", "latency": "ssh",
    "vnc": "vnc", "vnc-cold": "vnc",
    "aria2": "aria2", "torrent": "aria2",
    "drive": "drive",
    "supervision": "supervision",
}
DEFAULT = [r for r in GROUPS if r != "vnc-cold"]
WORK_ROOT = Path.home() / ".cache" / "colabmagic-bench"
TITLE = "# colabmagic benchmarks"
README_BEGIN = "<!-- benchmark results: written by python -m benchmarks --readme, never by hand -->"
README_END = "<!-- end of benchmark results -->"


def _group(name: str) -> Callable:
    if name == "load":
        from . import load
        return load.run
    if name == "ssh":
        from . import ssh
        return ssh.run
    if name == "vnc":
        from . import vnc
        return vnc.run
    if name == "aria2":
        from . import aria2
        return aria2.run
    if name == "supervision":
        from . import supervision
        return supervision.run
    from . import drive
    return drive.run


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="colabmagic beside the recipes it replaces, measured side by side on this machine. "
                    "Ratio = recipe time / colabmagic time (above 1.0x colabmagic is faster).")
    parser.add_argument("--rows", default=",".join(DEFAULT),
                        help=f"comma-separated rows, or 'all' (default: all but vnc-cold): {', '.join(GROUPS)}. "
                             "vnc-cold removes the desktop packages and installs XFCE with recommends: minutes.")
    parser.add_argument("--runs", type=int, default=3, help="runs of each way per row (default 3; medians)")
    parser.add_argument("--cold-runs", type=int, default=None,
                        help="runs of the cold rows (default: --runs, at most 3; they reinstall packages)")
    parser.add_argument("--size-mb", type=int, default=None, help="bytes moved by the throughput, aria2 and "
                        "drive rows, in MiB (default 1024; --quick: 16)")
    parser.add_argument("--quick", action="store_true", help="small sizes (16 MiB) for a fast check")
    parser.add_argument("--results", default=None, metavar="FILE",
                        help="also write exactly what is printed (the table with the date and the machine) to FILE "
                             "(e.g. benchmarks/RESULTS.md)")
    parser.add_argument("--readme", default=None, metavar="FILE",
                        help="also put the same text (without its title) between the benchmark markers of FILE "
                             f"(README.md): {README_BEGIN} ... {README_END}")
    args = parser.parse_args(argv)
    rows = list(GROUPS) if args.rows == "all" else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in GROUPS]
    if unknown:
        parser.error(f"unknown rows: {', '.join(unknown)} (known: {', '.join(GROUPS)})")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.rows = rows
    return args


def render(results: List[Result], failures: List[str], args: argparse.Namespace, facts: Dict[str, str]) -> str:
    size = args.size_mb * MB
    end_load = load_average()
    head = [
        TITLE,
        "",
        f"- date: {facts['date']}",
        f"- machine: `{facts['uname']}`",
        f"- CPUs: {facts['cpus']}; RAM: {facts['ram']}; Python {facts['python']}",
        f"- load average (1, 5, 15 min) at the start: {facts['load']}; at the end: {end_load} "
        "(the two ways alternate, so both saw the same machine)"
        + ("; **the machine was busy: these numbers are noisy**" if busy(facts["load"], end_load) else ""),
        f"- command: `python -m benchmarks --rows {','.join(args.rows)} --runs {args.runs}"
        f"{f' --cold-runs {args.cold_runs}' if args.cold_runs is not None else ''}"
        f"{' --quick' if args.quick else ''}` (size {size / GB:.2f} GiB where a row moves data)",
        "- ratio = recipe / colabmagic, medians of the runs (above 1.0x colabmagic is faster); "
        "all traffic on 127.0.0.1, COLABMAGIC_OFFLINE=1",
        "",
    ]
    body = "\n" + table(results)
    tail = ["", "Rows that failed:", *[f"- {f}" for f in failures]] if failures else []
    return "\n".join(head) + body + "\n" + "\n".join(tail)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(argv)
    if args.size_mb is None:
        args.size_mb = 16 if args.quick else 1024
    cold_runs = args.cold_runs if args.cold_runs is not None else min(args.runs, 3)
    os.environ["COLABMAGIC_OFFLINE"] = "1"
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(WORK_ROOT, 0o700)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=WORK_ROOT))
    saved_home = os.environ.get("COLABMAGIC_HOME")
    ctx = Context(runs=args.runs, quick=args.quick, size=args.size_mb * MB, work=work, cold_runs=cold_runs,
                  say=lambda text: print(f"[bench] {text}", flush=True))
    facts = machine()
    results: List[Result] = []
    failures: List[str] = []
    try:
        ctx.fresh_home("shell")
        ctx.shell = new_shell()
        groups = list(dict.fromkeys(GROUPS[r] for r in args.rows))
        for group in groups:
            wanted = [r for r in args.rows if GROUPS[r] == group]
            ctx.say(f"{group}: {', '.join(wanted)} ({args.runs} runs)")
            began = time.monotonic()
            try:
                results.extend(_group(group)(ctx, wanted))
            except Exception as exc:  # one broken row must not hide the others
                traceback.print_exc()
                failures.append(f"{', '.join(wanted)}: {type(exc).__name__}: {str(exc)[:300]}")
            ctx.say(f"{group}: done in {time.monotonic() - began:.0f} s")
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()
        if saved_home is None:
            os.environ.pop("COLABMAGIC_HOME", None)
        else:
            os.environ["COLABMAGIC_HOME"] = saved_home
        shutil.rmtree(work, ignore_errors=True)
    text = render(results, failures, args, facts)
    print()
    print(text)
    if args.results:
        Path(args.results).write_text(text + "\n")  # byte for byte what was printed
    if args.readme:
        write_readme(Path(args.readme), text)
    return 1 if failures else 0


def busy(*loads: str) -> bool:
    """Whether any 1-minute load average given was above half the CPUs (other work was running)."""
    for load in loads:
        try:
            if float(load.split()[0]) > (os.cpu_count() or 1) / 2:
                return True
        except (ValueError, IndexError):
            continue
    return False


def write_readme(readme: Path, text: str) -> None:
    """Replace what lies between the README's benchmark markers with ``text`` (its title dropped)."""
    body = text[len(TITLE):].strip("\n") if text.startswith(TITLE) else text
    current = readme.read_text()
    begin, end = current.find(README_BEGIN), current.find(README_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{readme}: the markers {README_BEGIN!r} and {README_END!r} are missing")
    readme.write_text(current[:begin + len(README_BEGIN)] + "\n\n" + body + "\n\n" + current[end:])


if __name__ == "__main__":
    sys.exit(main())
