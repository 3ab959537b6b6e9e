"""Bad input across every magic argument: a clear error, nothing started, nothing written, nothing injected.

A table of magic lines (one slot each) times a table of hostile values
(shell metacharacters, newlines, NUL, unicode, leading dashes, huge values,
bad ports, malformed magnets, path escapes). Each combination runs as a
cell through ``get_ipython().run_line_magic(...)``, so values a cell line
cannot hold (a newline, NUL) reach the magic too. Every injected command
would create a sentinel file; it must never appear.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from IPython.core.error import UsageError
from support.fault_helpers import relay_args

from colabmagic.errors import ColabMagicError
from colabmagic.system import supervisor


def hostile(sentinel: Path) -> Dict[str, List[str]]:
    s = str(sentinel)
    return {
        "meta": [f"$(touch {s})", f"`touch {s}`", f"; touch {s}", f"| touch {s}", f"&& touch {s}",
                 f"x'; touch {s}; '", f'x"; touch {s}; "', f"> {s}"],
        "newline": [f"a\ntouch {s}", "a\r\nb: c", "a\x0bb"],
        "nul": ["a\x00b", "\x00"],
        "unicode": ["ｓｓｈ", "\u202eexe.txt", "ü" * 3, "名前", "\U0001f600"],
        "dash": [f"-oProxyCommand=touch {s}", "-x", "--", "-1"],
        "huge": ["9" * 400, "A" * 4000],  # longer lines only measure IPython's own $-expansion (quadratic)
        "port": ["0", "-22", "65536", "99999999999999999999", "1e3", "0x50", "22.5", "", " "],
        "magnet": ["magnet:", "magnet:?xt=urn:btih:", "magnet:?xt=urn:btih:ZZZ", "magnet:?dn=only-a-name",
                   "magnet:?xt=urn:btih:" + "g" * 40, f"magnet:?xt=urn:btih:{'a' * 40}&tr=$(touch {s})",
                   "magnet:?xt=urn:sha1:" + "a" * 40],
        "path": ["../../../etc/passwd", "/etc/shadow", "..", "a/../../b", "/", "~root/.ssh/id_rsa"],
    }


# magic, the rest of the line with {v} for the hostile value, which kinds of value apply to that slot.
ALL = ("meta", "newline", "nul", "unicode", "dash", "huge")
# An empty value where an option has a default means that default here (--port '' is no --port);
# other slots refuse it. Listed so the table says so rather than skipping it silently.
EMPTY = {""}
TUNNEL = [
    ("tunnel", "{v} --via ssh", ALL + ("port",)),
    ("tunnel", "{v}", ("meta", "newline", "nul", "unicode", "huge")),
    ("tunnel", "ssh {relay} --key {pub} --port {v}", ALL + ("port",), EMPTY),
    ("tunnel", "ssh {relay} --key {pub} --user {v}", ALL + ("path",)),
    ("tunnel", "ssh {relay} --key {v}", ALL),
    ("tunnel", "ssh {relay} --key-file {v}", ALL + ("path",)),
    ("tunnel", "ssh {relay} --key {pub} --env {v}", ALL),
    ("tunnel", "ssh {relay} --key {pub} --name {v}", ALL + ("path",)),
    ("tunnel", "ssh --via {v} --key {pub}", ALL),
    # a bare number is a legal IPv4 host ("22.5" is 22.0.0.5): never tried here, it would leave loopback
    ("tunnel", "ssh --via ssh --relay {v} --relay-host-key {hk} --key {pub}", ALL),
    ("tunnel", "8000 --via ssh --relay {v} --relay-host-key {hk}", ALL),
    ("tunnel", "8000 --via ssh --relay root@127.0.0.1:{v} --relay-host-key {hk}", ALL + ("port",)),
    ("tunnel", "8000 --via ssh --relay {relay_at} --relay-host-key {v}", ALL),
    ("tunnel", "8000 --via ssh --relay {relay_at} --relay-known-hosts {v}", ALL + ("path",)),
    ("tunnel", "8000 --via ssh --relay {relay_at} --relay-host-key {hk} --relay-key-file {v}", ALL + ("path",)),
    ("tunnel", "8000 {relay_np} --remote-port {v}", ALL + ("port",), EMPTY),
    ("tunnel", "8000 --proto {v} --via ssh", ALL),
    ("tunnel", "jupyter --via {v}", ALL),
]
VNC = [
    ("vnc", "start --geometry {v}", ALL + ("port",), EMPTY),
    ("vnc", "start --depth {v}", ALL + ("port",)),
    ("vnc", "start --display {v}", ALL + ("port", "path"), EMPTY | {"0"}),  # "0" is display :0
    ("vnc", "start --via {v}", ALL),
    ("vnc", "{v}", ALL),
]
ARIA2 = [
    ("aria2", "add {v}", ALL + ("magnet", "path")),
    ("aria2", "add http://127.0.0.1:9/x.bin --out {v}", ("newline", "nul", "dash", "path"), {"-1"}),
    ("aria2", "add http://127.0.0.1:9/x.bin --header {v}", ("newline", "nul", "huge")),
    ("aria2", "add http://127.0.0.1:9/x.bin --user-agent {v}", ("newline", "nul")),
    ("aria2", "add http://127.0.0.1:9/x.bin --seed-time {v}", ALL + ("port",), {"0", "65536", "1e3", "22.5", "99999999999999999999"}),  # minutes
    ("aria2", "add http://127.0.0.1:9/x.bin --dir {v}", ("newline", "nul")),
    ("aria2", "start --max-concurrent {v}", ALL + ("port",)),
    ("aria2", "start --dir {v}", ("newline", "nul")),
    ("aria2", "status {v}", ALL + ("path",), {"--"}),  # "--" alone: no id, the whole table
    ("aria2", "pause {v}", ALL + ("path",)),
    ("aria2", "remove {v}", ALL + ("path",)),
    ("aria2", "{v}", ALL),
]
DRIVE = [
    ("drive_sync", "--backend {v}", ALL),
    ("drive_sync", "--timeout {v}", ALL + ("port",)),
    ("drive_sync", "--backend rclone --remote {v} --path {mp}", ("meta", "newline", "nul", "dash", "huge")),
    ("drive_sync", "--backend rclone --remote {remote} --path {v}", ("newline", "nul", "dash", "huge", "path")),
]
CORE = [
    ("colabmagic", "logs {v}", ALL + ("path",)),
    ("colabmagic", "logs sshd -n {v}", ALL + ("port",)),
    ("colabmagic", "{v}", ALL),
]


def _snapshot(*roots: Path) -> List[Tuple[str, int]]:
    """Every file under the test's folder ($COLABMAGIC_HOME and $HOME are inside it) and every entry at the
    working directory's top level, with its modification time."""
    found = []
    for root in roots:
        if root == Path.cwd():
            found += [(str(p), p.lstat().st_mtime_ns) for p in root.iterdir()]
        else:  # files only: an empty state folder (secrets/, drive/) made on first look is not a write
            found += [(str(p), p.lstat().st_mtime_ns) for p in root.rglob("*") if not p.is_dir()]
    return sorted(found)


def _one_clear_line(c: Any) -> bool:
    """The refusal is one short line: the error's message, and nothing else shown."""
    message = str(c.error).strip()
    shown = [line for line in c.output.splitlines() if line.strip()]
    return bool(message) and "\n" not in message and len(message) <= 400 and len(shown) <= 1


def _run_table(ip, cm_home: Path, tmp_path: Path, table, fill: Dict[str, str], figures) -> None:
    sentinel = tmp_path / "INJECTED"
    values = hostile(sentinel)
    tried = 0
    failures: List[str] = []
    for row in table:
        magic, template, kinds = row[:3]
        legal = row[3] if len(row) > 3 else set()  # values that are valid for this slot
        for kind in kinds:
            for value in values[kind]:
                if value in legal:
                    continue
                quoted = shlex.quote(value) if value else "''"
                rest = template.format(v=quoted, **fill)
                before = _snapshot(tmp_path, Path.cwd())
                running = sorted(s.name for s in supervisor.running())
                c = ip.cell(f"get_ipython().run_line_magic({magic!r}, {rest!r})", check=False)
                tried += 1
                problem = ""
                if not isinstance(c.error, (UsageError, ColabMagicError)):
                    problem = f"no clear error ({type(c.error).__name__ if c.error else 'accepted'})"
                elif "Traceback" in c.output:
                    problem = "a traceback"
                elif not _one_clear_line(c):
                    problem = f"not one clear line: {c.output[:200]!r}"
                elif sorted(s.name for s in supervisor.running()) != running:
                    problem = "something was started"
                elif _snapshot(tmp_path, Path.cwd()) != before:
                    now = _snapshot(tmp_path, Path.cwd())
                    changed = sorted(set(now) ^ set(before))[:3]
                    problem = f"something was written (under $COLABMAGIC_HOME, $HOME or the working folder): {changed}"
                if sentinel.exists():
                    problem = "INJECTED COMMAND RAN"
                    sentinel.unlink()
                if problem:
                    failures.append(f"%{magic} {rest[:120]!r} [{kind}]: {problem}: {str(c.error)[:150]!r}")
                    for svc in supervisor.running():  # keep the next row's "nothing started" honest
                        if svc.name not in running:
                            svc.stop()
    figures.inputs(tried, tried - len(failures))
    for failure in failures:
        print("  " + failure)
    assert not failures, f"{len(failures)} of {tried} inputs not refused cleanly:\n" + "\n".join(failures[:40])


@pytest.fixture
def fill(relay, client_key, tmp_path) -> Dict[str, str]:
    pub = Path(f"{client_key}.pub").read_text().strip()
    return {
        "relay": relay_args(relay),
        "relay_np": relay_args(relay).rsplit(" --remote-port", 1)[0],
        "relay_at": relay.relay,
        "hk": shlex.quote(relay.host_key),
        "pub": shlex.quote(pub),
        "mp": str(tmp_path / "mnt"),
        "remote": str(tmp_path / "remote"),
    }


@pytest.mark.parametrize("name,table", [("tunnel", TUNNEL), ("vnc", VNC), ("aria2", ARIA2), ("drive", DRIVE),
                                        ("colabmagic", CORE)])
def test_hostile_values_in_every_argument(ip, cm_home, tmp_path, fill, figures, name, table, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # a %vnc that got through would not touch the real home
    (tmp_path / "remote").mkdir()
    _run_table(ip, cm_home, tmp_path, table, fill, figures)
