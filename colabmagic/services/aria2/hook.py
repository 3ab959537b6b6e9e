"""aria2's on-download-complete and on-download-error hooks: place a staged download, record the event.

aria2 runs this file directly (``execve``, no shell) with GID, number of
files and the first file's path. Only downloads under our staging folder
(a sibling ``staging/`` of this file) are touched. Each file is copied to a
hidden temporary name in the target folder, flushed, and renamed, so the
final path never shows a partial file; then the staged copy is deleted and
the stage's record says ``placed`` (or ``error`` with the reason). Standard
library only: it is installed as a copy with its own ``#!python -I`` line.
Installed a second time as ``on-download-error``. Either way the outcome
becomes an event (system/notify.py, copied beside it as
``colabmagic_notify.py``): the next cell shows it, and a webhook gets it when
notifications are on. aria2 starts the hooks with the daemon's minimal
environment, which holds no secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import List

ERROR_HOOK_NAME = "on-download-error"  # the same file, installed under this name too
NOTIFY_NAME = "colabmagic_notify.py"  # system/notify.py, copied beside the hooks
UPLOADED_TORRENT = re.compile(r"^[0-9a-f]{40}\.torrent$")


def _write_record(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def place(src: Path, final: Path) -> None:
    """Move ``src`` to ``final`` so that ``final`` appears only complete."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        if os.stat(src).st_dev == os.stat(final.parent).st_dev:
            os.replace(src, final)
            return
    except OSError:
        pass
    tmp = final.with_name(f".{final.name}.colabmagic-part")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 4 * 1024 * 1024)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, final)
    os.unlink(src)


def move_stage(stage_dir: Path, target: Path) -> List[str]:
    placed: List[str] = []
    for root, dirs, files in os.walk(stage_dir):
        dirs.sort()
        for name in sorted(files):
            src = Path(root) / name
            rel = src.relative_to(stage_dir)
            if name.endswith(".aria2") or (len(rel.parts) == 1 and UPLOADED_TORRENT.match(name)):
                continue
            final = target / rel
            place(src, final)
            placed.append(str(final))
    return placed


def main(argv: List[str]) -> int:
    """Place a staged download, then record the event (download complete, or failed)."""
    failed = Path(argv[0]).name == ERROR_HOOK_NAME
    error = "" if failed else place_staged(argv)
    if len(argv) >= 4 and (argv[3] or failed):
        notify(argv, failed or bool(error), error)
    return 1 if error else 0


def notify(argv: List[str], failed: bool, error: str) -> None:
    """aria2_download_complete / aria2_download_error through notify.py (installed beside this file)."""
    try:
        import importlib.util

        here = Path(__file__).resolve().parent
        spec = importlib.util.spec_from_file_location("colabmagic_notify", here / NOTIFY_NAME)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fields = {"gid": argv[1], "files": int(argv[2]) if argv[2].isdigit() else 0,
                  "name": os.path.basename(argv[3]) if argv[3] else "", "path": argv[3]}
        if error:
            fields["error"] = error
        module.emit("aria2_download_error" if failed else "aria2_download_complete",
                    home_dir=str(here.parent), wait=True, **fields)
    except Exception as exc:  # a notification never turns a finished download into a failed hook
        print(f"[colabmagic hook] could not record the event: {type(exc).__name__}", file=sys.stderr)


def place_staged(argv: List[str]) -> str:
    """Move a staged download into its final folder; the error, or "" (also when it was not staged)."""
    if len(argv) < 4 or not argv[3]:
        return ""
    staging = Path(__file__).resolve().parent / "staging"
    try:
        rel = Path(argv[3]).resolve().relative_to(staging.resolve())
    except ValueError:
        return ""  # not a staged download (or a magnet's metadata step)
    if len(rel.parts) < 2:
        return ""
    stage_dir = staging / rel.parts[0]
    record_path = staging / f"{rel.parts[0]}.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return ""
    target = Path(record.get("target", ""))
    if not target.is_absolute():
        return ""
    record["gid"] = argv[1]
    try:
        record["files"] = move_stage(stage_dir, target)
        record["state"] = "placed"
        shutil.rmtree(stage_dir, ignore_errors=True)
    except OSError as exc:
        record["state"] = "error"
        record["error"] = f"could not move into {target}: {exc}"
        print(f"[colabmagic hook] {record['error']}", file=sys.stderr)
    _write_record(record_path, record)
    return "" if record["state"] == "placed" else str(record["error"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
