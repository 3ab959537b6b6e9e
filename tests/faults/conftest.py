"""Fixtures for the fault, load and bad-input suite, and the one summary it prints at the end.

Each test records what it did through the ``figures`` fixture: faults
injected (and whether and how fast the product came back), inputs tried,
secrets found where they must not be, listeners off loopback. At session
end ``pytest_terminal_summary`` prints one summary and writes it as JSON to
``$COLABMAGIC_FAULTS_JSON`` (default: ``faults-summary.json`` in pytest's
cache folder). The relay, client key and ssh login helpers mirror
tests/tunnel's fixtures: a real second sshd on loopback stands for "your server".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pytest

SUMMARY: Dict[str, Any] = {
    "faults": [],  # {"fault", "survived", "seconds", "how"}
    "inputs_tried": 0,
    "inputs_refused_cleanly": 0,
    "secret_leaks": [],  # {"where", "secret"}
    "secret_places_checked": 0,
    "secret_place_kinds": [],  # output, saved notebook, files, cmdline, environ
    "listeners_checked": 0,
    "listeners_off_loopback": [],
    "load": {},  # name -> figures
    "cleartext_tried": 0,  # exposures of a login over an unencrypted path, or of a control port
    "cleartext_refused": 0,
}


class Figures:
    """What one test contributes to the summary; each call also prints a line (run with -s)."""

    def fault(self, name: str, survived: bool, seconds: Optional[float] = None, how: str = "") -> None:
        SUMMARY["faults"].append({"fault": name, "survived": bool(survived),
                                  "seconds": None if seconds is None else round(seconds, 2), "how": how})
        took = "" if seconds is None else f" in {seconds:.1f}s"
        print(f"\n[faults] {name}: {'survived' if survived else 'NOT survived'}{took} ({how})")

    def inputs(self, tried: int, refused_cleanly: int) -> None:
        SUMMARY["inputs_tried"] += tried
        SUMMARY["inputs_refused_cleanly"] += refused_cleanly
        print(f"\n[faults] bad input: {refused_cleanly}/{tried} refused with one clear line, nothing started")

    def secrets(self, places: int, leaks: List[Dict[str, str]], kinds: Sequence[str] = ()) -> None:
        SUMMARY["secret_places_checked"] += places
        SUMMARY["secret_leaks"].extend(leaks)
        SUMMARY["secret_place_kinds"].extend(k for k in kinds if k not in SUMMARY["secret_place_kinds"])
        print(f"\n[faults] secrets: {places} places checked ({', '.join(kinds)}), {len(leaks)} leaks "
              f"{leaks if leaks else ''}")

    def listeners(self, checked: int, off_loopback: List[str]) -> None:
        SUMMARY["listeners_checked"] += checked
        SUMMARY["listeners_off_loopback"].extend(off_loopback)
        print(f"\n[faults] exposure: {checked} listeners of ours, {len(off_loopback)} off loopback {off_loopback}")

    def cleartext(self, tried: int, refused: int) -> None:
        SUMMARY["cleartext_tried"] += tried
        SUMMARY["cleartext_refused"] += refused
        print(f"\n[faults] cleartext exposures: {refused}/{tried} refused")

    def load(self, name: str, **facts: Any) -> None:
        SUMMARY["load"][name] = facts
        print(f"\n[faults] load {name}: " + ", ".join(f"{k}={v}" for k, v in facts.items()))


@pytest.fixture
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    faults = SUMMARY["faults"]
    if not (faults or SUMMARY["inputs_tried"] or SUMMARY["load"] or SUMMARY["secret_places_checked"]
            or SUMMARY["cleartext_tried"]):
        return
    survived = sum(1 for f in faults if f["survived"])
    timed = [f["seconds"] for f in faults if f["survived"] and f["seconds"] is not None]
    summary = {
        "faults_injected": len(faults),
        "faults_survived": survived,
        "slowest_recovery_seconds": max(timed) if timed else None,
        "inputs_tried": SUMMARY["inputs_tried"],
        "inputs_refused_cleanly": SUMMARY["inputs_refused_cleanly"],
        "secret_places_checked": SUMMARY["secret_places_checked"],
        "secret_place_kinds": SUMMARY["secret_place_kinds"],
        "secrets_leaked": len(SUMMARY["secret_leaks"]),
        "listeners_checked": SUMMARY["listeners_checked"],
        "listeners_off_loopback": len(SUMMARY["listeners_off_loopback"]),
        "cleartext_exposures_tried": SUMMARY["cleartext_tried"],
        "cleartext_exposures_refused": SUMMARY["cleartext_refused"],
        "load": SUMMARY["load"],
        "details": {"faults": faults, "secret_leaks": SUMMARY["secret_leaks"],
                    "listeners_off_loopback": SUMMARY["listeners_off_loopback"]},
    }
    default = Path(str(config.cache.mkdir("colabmagic"))) / "faults-summary.json" if config.cache else None
    target = Path(os.environ.get("COLABMAGIC_FAULTS_JSON") or default or "faults-summary.json")
    target.write_text(json.dumps(summary, indent=1))
    tr = terminalreporter
    tr.section("colabmagic faults summary")
    for f in faults:
        took = "" if f["seconds"] is None else f"{f['seconds']:>6.1f}s"
        tr.write_line(f"  {'ok  ' if f['survived'] else 'FAIL'} {took:>8} {f['fault']} ({f['how']})")
    for name, facts in SUMMARY["load"].items():
        tr.write_line(f"  load {name}: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
    tr.write_line(
        f"faults injected {len(faults)}, survived {survived}"
        + (f" (slowest recovery {max(timed):.1f}s)" if timed else "")
        + f"; inputs tried {summary['inputs_tried']} (refused cleanly {summary['inputs_refused_cleanly']})"
        + f"; secrets leaked {summary['secrets_leaked']} (in {summary['secret_places_checked']} places checked"
        + (f": {', '.join(summary['secret_place_kinds'])}" if summary["secret_place_kinds"] else "") + ")"
        + f"; listeners off loopback {summary['listeners_off_loopback']} (of {summary['listeners_checked']})"
        + f"; cleartext exposures refused {summary['cleartext_exposures_refused']}"
          f" (of {summary['cleartext_exposures_tried']} tried)"
    )
    tr.write_line(f"summary written to {target}")


@pytest.fixture
def desktop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A HOME of its own for the desktop (no DISPLAY or VNC password from outside); VNC stopped after."""
    home = tmp_path / "desktop-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("VNC_PASSWORD", raising=False)
    yield home
    from colabmagic.services import vnc

    vnc.stop()

