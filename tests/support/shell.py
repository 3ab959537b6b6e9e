"""A fresh IPython shell per test: nothing (``%config``, magics, event hooks, names) carries over.

IPython's own test set-up (``globalipapp.start_ipython``: no pager, builtins) runs once per
process; each test then gets a new ``TerminalInteractiveShell`` singleton with its own config
and an in-memory history, and ``close_shell`` drops it again.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def fresh_shell() -> Any:
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from IPython.testing import globalipapp, tools

    globalipapp.start_ipython()
    TerminalInteractiveShell.clear_instance()
    config = tools.default_config()
    config.TerminalInteractiveShell.simple_prompt = True
    config.HistoryManager.hist_file = ":memory:"
    saved = sys.displayhook, sys.excepthook, sys.modules.get("__main__")
    shell = TerminalInteractiveShell.instance(config=config)
    sys.displayhook, sys.excepthook = saved[0], saved[1]
    if saved[2] is not None:
        sys.modules["__main__"] = saved[2]
    shell.builtin_trap.activate()
    # As globalipapp does: system calls and tracebacks print where the test's capture sees them.
    shell.system = types.MethodType(globalipapp.xsys, shell)
    shell._showtraceback = types.MethodType(globalipapp._showtraceback, shell)
    return shell


def close_shell(shell: Any) -> None:
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    shell.builtin_trap.deactivate()
    if TerminalInteractiveShell.initialized() and TerminalInteractiveShell.instance() is shell:
        TerminalInteractiveShell.clear_instance()
