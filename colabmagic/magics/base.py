"""What every colabmagic Magics class shares: settings, the state object, argument parsing.

The state object lives in ``user_ns`` as ``_colabmagic`` (pushed with
``interactive=False`` so ``%who`` does not list it) and is always fetched
through ``get_state``, which rebuilds it if ``%reset`` removed it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import sys
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple

from IPython.core.magic import Magics, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.utils.process import arg_split
from traitlets import Bool, TraitError, Unicode, default, observe, validate

from .. import display
from ..state import ColabMagicState

STATE_NAME = "_colabmagic"


def get_state(shell: Any) -> ColabMagicState:
    """The ``_colabmagic`` object, pushed into the namespace again if it was removed."""
    state = shell.user_ns.get(STATE_NAME)
    if not isinstance(state, ColabMagicState):
        state = ColabMagicState()
        shell.push({STATE_NAME: state}, interactive=False)
    return state


class _Deferred(ModuleType):
    """Stands for a module not imported yet; the first attribute read imports it (and its package).

    importlib's LazyLoader cannot defer a submodule: finding one reads its
    package's ``__path__``, which runs the package (``services.drive`` imports
    its whole sync machinery). This finds nothing until it is used.
    """

    def _module(self) -> ModuleType:
        real = self.__dict__.get("_real")
        if real is None:
            real = importlib.import_module(self.__name__)
            self.__dict__["_real"] = real
        return real

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._module(), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(self._module(), attr)


def lazy_import(name: str) -> ModuleType:
    """Module ``name``, imported only on its first attribute access.

    The magics modules refer to their services through this, so ``%load_ext
    colabmagic`` registers every magic without importing any service.
    """
    return sys.modules.get(name) or _Deferred(name)


def defaults_from(config: str, *same: str, **renamed: str) -> Dict[str, Any]:
    """Dynamic defaults for traits: each of ``same`` takes the default of the field of its name in
    ``config``; ``trait=field`` (``renamed``) the default of ``field``.

    ``config`` is a service's frozen config dataclass, ``"module:Class"``: the one
    place each default is written. It is imported when a trait is first read
    (``%config DriveMagics`` or the first call), so ``%load_ext`` still imports no
    service. Use in a class body: ``locals().update(defaults_from(...))``.
    """
    module_name, class_name = config.split(":")

    def field_default(name: str) -> Any:
        cls = getattr(importlib.import_module(module_name), class_name)
        found = {f.name: f for f in dataclasses.fields(cls)}[name]
        if found.default_factory is not dataclasses.MISSING:
            return found.default_factory()
        return found.default

    handlers: Dict[str, Any] = {}
    for trait, name in {**{name: name for name in same}, **renamed}.items():
        def read(self: Any, name: str = name) -> Any:
            return field_default(name)

        handlers[f"_default_of_{trait}"] = default(trait)(read)
    return handlers


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
        "The environment variable COLABMAGIC_OFFLINE=1 does the same. Services receive it in "
        "their config objects.",
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
        self._hooks: List[Tuple[str, Callable[..., None]]] = []
        if shell is not None:
            get_state(shell)

    def on(self, event: str, callback: Callable[..., None]) -> None:
        """Register an IPython event callback that ``close()`` removes again.

        The very object registered is kept: IPython 7.34 wraps callbacks and finds
        them again by identity, and each ``self.method`` access is a new object.
        """
        if self.shell is None:
            return
        self.shell.events.register(event, callback)
        self._hooks.append((event, callback))

    def close(self) -> None:
        """Remove the event callbacks this instance registered (``unload_ipython_extension``)."""
        shell = self.shell
        while shell is not None and self._hooks:
            event, callback = self._hooks.pop()
            try:
                shell.events.unregister(event, callback)
            except ValueError:  # already gone (the user removed it)
                pass

    # Every colabmagic class sees a change of this setting; the one behind %colabmagic acts on it (and says
    # so, or why not) once. %config shows an error as one logged line.
    @validate("notify")
    def _check_notify(self, proposal: Any) -> str:
        from ..services import events

        if not self._acts_on_notify():
            return str(proposal["value"])
        try:
            return events.check_setting(str(proposal["value"]))
        except ValueError as err:
            raise TraitError(str(err)) from None

    @observe("notify")
    def _notify_changed(self, change: Any) -> None:
        from ..services import events

        if self._acts_on_notify():
            print(events.configure(change["new"]))

    def _acts_on_notify(self) -> bool:
        """Every colabmagic class sees the setting; the one behind %colabmagic acts on it (``unregister``
        takes an earlier load's instances out of the shell's configurables, so there is one)."""
        return type(self).__name__ == "ColabMagics"

    def parse(self, parser: MagicArgumentParser, line: str) -> Optional[Any]:
        """Parse ``line`` (None if only help was shown) and make sure the state object exists."""
        get_state(self.shell)
        return parse(parser, line)

    @property
    def state(self) -> ColabMagicState:
        return get_state(self.shell)

    def progress(self, title: str) -> display.ProgressBar:
        return display.ProgressBar(title)


def unregister(shell: Any) -> None:
    """Remove every colabmagic Magics instance from ``shell``: its magics, its event hooks, its
    ``%config`` entry. Only instances of ``ColabMagicsBase`` are touched, found by type."""
    manager = shell.magics_manager
    for name, instance in list(manager.registry.items()):
        if not isinstance(instance, ColabMagicsBase):
            continue
        instance.close()
        del manager.registry[name]
        for table in manager.magics.values():
            for magic, bound in list(table.items()):
                if getattr(bound, "__self__", None) is instance:
                    del table[magic]
        configurables = getattr(shell, "configurables", [])
        if instance in configurables:
            configurables.remove(instance)


def subcommand_help(parsers: List[MagicArgumentParser]) -> str:
    return "\n".join(p.format_help() for p in parsers)


def help_on_demand(magic: Any, description: str, build: Callable[[], str]) -> None:
    """Give ``magic`` its full help text (``build()``), formatted only when someone asks for it.

    argparse formats help slowly (gettext look-ups per line), and ``%load_ext``
    should not pay for five magics' help. IPython's ``%tunnel?`` asks an
    object's ``getdoc()`` before its ``__doc__``; ``__doc__`` (used by
    ``%lsmagic`` listings) is the magic's one-line ``description``.
    """
    built: List[str] = []

    def getdoc() -> str:
        if not built:
            built.append(build())
        return built[0]

    magic.__doc__ = description
    magic.getdoc = getdoc
