"""What every colabmagic Magics class shares: settings, the state object, argument parsing.

The state object lives in ``user_ns`` as ``_colabmagic`` (pushed with
``interactive=False`` so ``%who`` does not list it) and is always fetched
through ``get_state``, which rebuilds it if ``%reset`` removed it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from types import ModuleType
from typing import Any, Callable, List, Optional

from IPython.core.magic import Magics, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.utils.process import arg_split
from traitlets import Bool, TraitError, Unicode, observe, validate

from .. import display
from ..state import ColabMagicState
from ..system import paths

STATE_NAME = "_colabmagic"
SHOWN_EVENTS = 10  # events printed under one cell; the rest are counted


def get_state(shell: Any) -> ColabMagicState:
    """The ``_colabmagic`` object, pushed into the namespace again if it was removed."""
    state = shell.user_ns.get(STATE_NAME)
    if not isinstance(state, ColabMagicState):
        state = ColabMagicState()
        shell.push({STATE_NAME: state}, interactive=False)
    return state


def lazy_import(name: str) -> ModuleType:
    """Module ``name``, executed only on its first attribute access.

    The magics modules refer to their services through this, so ``%load_ext
    colabmagic`` registers every magic without importing any service.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def ensure_state_before_cells(shell: Any) -> None:
    """Rebuild ``_colabmagic`` before each cell, so ``%reset -f`` never leaves it missing."""
    callbacks = shell.events.callbacks["pre_run_cell"]
    for cb in list(callbacks):
        if getattr(cb, "__qualname__", "") == "ensure_state_before_cells.<locals>.rebuild":
            callbacks.remove(cb)

    def rebuild(*_info: Any) -> None:
        get_state(shell)

    shell.events.register("pre_run_cell", rebuild)


def show_events_after_cells(shell: Any) -> None:
    """After each cell, print the events (system/notify.py) recorded since the last look: a background
    sync that failed, a download that finished, a tunnel's new address, a daemon that gave up."""
    from ..system import notify

    callbacks = shell.events.callbacks["post_run_cell"]
    for cb in list(callbacks):
        if getattr(cb, "__qualname__", "") == "show_events_after_cells.<locals>.show":
            callbacks.remove(cb)
    offset = [notify.end_offset()]  # what happened before this kernel loaded colabmagic is not replayed

    def show(*_info: Any) -> None:
        try:
            events, offset[0] = notify.read_since(offset[0])
        except Exception:  # never let a look at the events break the user's cell
            return
        fresh = [e for e in events if not (e.get("shown") and e.get("pid") == os.getpid())]  # printed already
        for event in fresh[:SHOWN_EVENTS]:
            print(f"colabmagic: {event.get('message', event.get('event'))}")
        if len(fresh) > SHOWN_EVENTS:
            print(f"colabmagic: ... and {len(fresh) - SHOWN_EVENTS} more events in {notify.events_path()}")

    shell.events.register("post_run_cell", show)


class ColabArgumentParser(MagicArgumentParser):
    """A magic's parser: errors are one short UsageError line, even for a huge bad value."""

    MAX_VALUE = 80

    def error(self, message: str) -> Any:
        # argparse quotes the offending value; a 100 kB value must not become a 100 kB message.
        shortened = re.sub(
            "'([^']{" + str(self.MAX_VALUE) + "})[^']+'", lambda m: f"'{m.group(1)}...'", message
        )
        return super().error(shortened[:500])


def make_parser(prog: str, description: str) -> MagicArgumentParser:
    return ColabArgumentParser(prog=f"%{prog}", description=description, add_help=True)


def parse(parser: MagicArgumentParser, line: str) -> Optional[Any]:
    """Parse a magic line; None when only help was asked for (it has been printed).

    Words are split as a POSIX shell would (quotes removed), so
    ``--key "ssh-ed25519 AAAA me"`` arrives as one value without its quotes.
    Nothing is ever run by a shell.
    """
    try:
        return parser.parse_args(arg_split(line, posix=True))
    except SystemExit:
        return None


def usage(parser: MagicArgumentParser) -> str:
    return parser.format_help()


@magics_class
class ColabMagicsBase(Magics):
    """Settings shared by every colabmagic magic (``%config ColabMagicsBase`` lists them)."""

    offline = Bool(
        False,
        help="Contact nothing beyond this machine and the package registries "
        "(no DHT, LPD, public trackers, binary or key downloads). "
        "The environment variable COLABMAGIC_OFFLINE=1 does the same.",
    ).tag(config=True)

    notify = Unicode(
        "off",
        help="Notifications of events nobody may be watching (a background Drive sync failed or recovered, an "
        "aria2 download finished or failed, a tunnel's address changed, a daemon gave up restarting): 'on' "
        "POSTs each as JSON to the webhook URL (an ntfy topic URL works) held by the secret COLABMAGIC_NOTIFY_URL "
        "(environment, Colab Secrets or Kaggle Secrets); a secret's name uses that secret; 'off' stops. Never "
        "the URL itself: it is a secret.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        if shell is not None:
            get_state(shell)

    # Every colabmagic class sees a change of this setting; the one behind %colabmagic acts on it (and says
    # so, or why not) once. %config shows an error as one logged line.
    @validate("notify")
    def _check_notify(self, proposal: Any) -> str:
        from ..system import notify

        if not self._acts_on_notify():
            return str(proposal["value"])
        try:
            return notify.check_setting(str(proposal["value"]))
        except ValueError as err:
            raise TraitError(str(err)) from None

    @observe("notify")
    def _notify_changed(self, change: Any) -> None:
        from ..system import notify

        if self._acts_on_notify():
            print(notify.configure(change["new"]))

    def _acts_on_notify(self) -> bool:
        """Only the %colabmagic instance the shell has registered now: an instance left from an earlier
        load (IPython keeps every Magics instance among the shell's configurables) stays quiet."""
        if type(self).__name__ != "ColabMagics":
            return False
        manager = getattr(self.shell, "magics_manager", None)
        registry = getattr(manager, "registry", None)
        return registry is None or registry.get("ColabMagics") is self

    @observe("offline")
    def _offline_changed(self, change: Any) -> None:
        if change["new"]:
            os.environ[paths.OFFLINE_ENV] = "1"
        else:
            os.environ.pop(paths.OFFLINE_ENV, None)

    def parse(self, parser: MagicArgumentParser, line: str) -> Optional[Any]:
        """Parse ``line`` (None if only help was shown) and make sure the state object exists."""
        get_state(self.shell)
        return parse(parser, line)

    @property
    def state(self) -> ColabMagicState:
        return get_state(self.shell)

    def progress(self, title: str) -> display.ProgressBar:
        return display.ProgressBar(title)


def subcommand_help(parsers: List[MagicArgumentParser]) -> str:
    return "\n".join(p.format_help() for p in parsers)


def help_on_demand(magic: Any, parser: MagicArgumentParser, build: Callable[[], str]) -> None:
    """Give ``magic`` its full help text (``build()``), formatted only when someone asks for it.

    argparse formats help slowly (gettext look-ups per line), and ``%load_ext``
    should not pay for five magics' help. IPython's ``%tunnel?`` asks an
    object's ``getdoc()`` before its ``__doc__``; ``__doc__`` (used by
    ``%lsmagic`` listings) is the parser's one-line description.
    """
    built: List[str] = []

    def getdoc() -> str:
        if not built:
            built.append(build())
        return built[0]

    magic.__doc__ = parser.description
    magic.getdoc = getdoc
