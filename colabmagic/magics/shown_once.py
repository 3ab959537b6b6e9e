"""Show a secret the user asked for once, and keep it out of the saved notebook.

In a notebook the secret goes out as a display with a display id; when the
next cell runs, that output is replaced (through the display id) by a note
saying how to show it again, so the .ipynb that is saved afterwards holds the
note, not the secret. A terminal IPython saves no outputs: there it is printed.
"""

from __future__ import annotations

from typing import Any


def show_secret(shell: Any, text: str, again: str) -> None:
    """Show ``text`` (which holds a secret) now; from the next cell on, the output says ``again`` instead."""
    if getattr(shell, "kernel", None) is None:  # terminal IPython: nothing is saved
        print(text)
        return
    from IPython.display import Pretty, display

    handle = display(Pretty(text), display_id=True)

    def hide(*_info: Any) -> None:
        shell.events.unregister("pre_run_cell", hide)
        handle.update(Pretty(f"(a secret was shown here and is now hidden; {again})"))

    shell.events.register("pre_run_cell", hide)
