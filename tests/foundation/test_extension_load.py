"""`%load_ext colabmagic`, the state object, `%colabmagic status` in a real IPython shell."""

import subprocess
import sys


def test_load_twice_and_empty_status(ip):
    again = ip.cell("%load_ext colabmagic")
    assert again.error is None
    status = ip.cell("%colabmagic status")
    text = str(status.value)
    assert "no services running" in text
    assert "<table>" in status.value._repr_html_()


def test_state_object_hidden_from_who_and_rebuilt_after_reset(ip):
    ip.cell("x = 1")
    assert "_colabmagic" in ip.user_ns
    who = ip.cell("%who")
    assert "x" in who.stdout and "_colabmagic" not in who.stdout
    ip.cell("%reset -f")
    assert "_colabmagic" not in ip.user_ns
    ip.cell("%colabmagic status")
    assert "_colabmagic" in ip.user_ns
    who = ip.cell("%who")
    assert "_colabmagic" not in who.stdout


def test_bad_subcommand_is_one_line_usage_error(ip):
    bad = ip.cell("%colabmagic bogus", check=False)
    assert type(bad.error).__name__ == "UsageError"
    assert "Traceback" not in bad.output
    missing = ip.cell("%colabmagic stop nothing-such", check=False)
    assert "no running service named 'nothing-such'" in missing.output
    assert "Traceback" not in missing.output


def test_load_is_fast_and_light():
    code = (
        "import sys, time\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "before = set(sys.modules)\n"
        "t = time.perf_counter()\n"
        "ip.run_line_magic('load_ext', 'colabmagic')\n"
        "print(time.perf_counter() - t)\n"
        "new = set(sys.modules) - before\n"
        "heavy = sorted(m for m in new if m.split('.')[0] in {'aria2p', 'pyngrok', 'google', 'requests', 'pexpect'})\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[-1] == "[]", f"heavy imports at load: {lines[-1]}"


def test_doctor_reports_the_machine(ip):
    doc = ip.cell("%colabmagic doctor").value
    text = str(doc)
    for check in ("privileges", "free disk", "GPU", "platform", "package manager"):
        assert check in text
    assert "running as root" in text or "sudo" in text
    assert "generic Linux" in text  # this machine is not hosted Colab


def _ours(ip) -> dict:
    """What colabmagic put into the shell: magics, event hooks, %config entries, the state object."""
    from colabmagic.magics.base import ColabMagicsBase

    def mine(fn) -> bool:
        # IPython 7.34 wraps event callbacks (the bound method is in __wrapped__); a magic is the bound
        # method itself, whose __wrapped__ is the plain function: look at both.
        return any(isinstance(getattr(f, "__self__", None), ColabMagicsBase)
                   for f in (fn, getattr(fn, "__wrapped__", None)))

    return {
        "magics": sorted(name for table in ip.magics_manager.magics.values()
                         for name, fn in table.items() if mine(fn)),
        "hooks": sorted(event for event, callbacks in ip.events.callbacks.items() for cb in callbacks if mine(cb)),
        "configurables": sorted(type(c).__name__ for c in ip.configurables if isinstance(c, ColabMagicsBase)),
        "state": "_colabmagic" in ip.user_ns,
    }


def test_load_unload_load_leaves_exactly_one_set(ip):
    loaded = _ours(ip)
    assert {"tunnel", "vnc", "aria2", "drive_sync", "colabmagic"} <= set(loaded["magics"])
    # ColabMagics: state rebuild (pre) and events (post); TunnelMagics: address watch (post).
    assert loaded["hooks"] == ["post_run_cell", "post_run_cell", "pre_run_cell"]
    assert len(loaded["configurables"]) == len(set(loaded["configurables"])) == 5
    ip.cell("%unload_ext colabmagic")
    assert _ours(ip) == {"magics": [], "hooks": [], "configurables": [], "state": False}
    assert ip.cell("%tunnel list", check=False).error is not None  # the magic is really gone
    ip.cell("%load_ext colabmagic")
    assert _ours(ip) == loaded
    ip.cell("%reload_ext colabmagic")
    assert _ours(ip) == loaded
    assert "no tunnels running" in str(ip.cell("%tunnel list").value)
