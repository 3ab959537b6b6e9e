"""Typed service records: the facts a service writes into its supervisor record and reads back.

The supervisor keeps a plain JSON dict per service (``ServiceSpec.info``,
``Service.info``) and reads only its own keys from it (``runtime_dirs``,
``on_stop``); what the other facts mean belongs to the service. Each service
declares its facts as a frozen dataclass derived from ``Record`` that lives
with the service (sshd.py's ``SshdRecord``, aria2/daemon.py's ``Aria2Record``,
...; tunnels/base.py's ``TunnelRecord`` is the model). ``to_info()`` gives the
plain dict for the ``ServiceSpec``; ``of(service)`` and ``from_info()`` read
it back. A key an older version did not write, or a value of the wrong type,
reads as the field's default, so a record written by the previous version
still reads. Two field markers change how a field is written: ``flattened``
(a small dataclass written as prefixed flat keys, as a tunnel's public
address is ``public_host``/``public_port``/``public_url``) and
``left_out_when_empty`` (written only when it has a value, so a key someone
else put in the same dict stays). ``Listing`` is the part every record
shares, for the views across services (``%colabmagic status``,
``%colabmagic stop GROUP``).
"""

from __future__ import annotations

import collections.abc
import typing
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Mapping, Optional, Type, TypeVar, Union

if TYPE_CHECKING:
    from ..system import supervisor

R = TypeVar("R", bound="Record")
_INVALID = object()  # a recorded value that does not fit its field: the default is read instead
_FLATTENED = "colabmagic.records.flattened"  # field metadata: the prefix of its flat keys
_LEFT_OUT_WHEN_EMPTY = "colabmagic.records.left_out_when_empty"  # field metadata


def flattened(prefix: str, default_factory: collections.abc.Callable[[], Any]) -> Any:
    """A field holding a small dataclass, written as one flat key per field: ``prefix`` + its name.

    (``address: PublicAddress = flattened("public_", PublicAddress)`` is written as public_host,
    public_port, public_url, the keys ``Listing`` reads.) Each key reads as the nested field's own
    default when missing or of the wrong type."""
    return field(default_factory=default_factory, metadata={_FLATTENED: prefix})


def left_out_when_empty(default: Any = None) -> Any:
    """A field written only when it has a value (not None, "", or an empty container).

    Writing the record then never puts a null over a key that someone else wrote into the same
    dict (a tunnel provider's ``relay``), and a record without it writes the dict it always did."""
    return field(default=default, metadata={_LEFT_OUT_WHEN_EMPTY: True})


@dataclass(frozen=True)
class Record:
    """Base class of a service's record: every field has a default (what a missing key reads as)."""

    GROUP: ClassVar[str] = ""  # what ``%colabmagic stop GROUP`` stops with it ("" for none)
    KIND: ClassVar[str] = ""  # which record a view across services has in hand ("" for no need to know)

    def loopback_port(self) -> int:
        """The port the service listens on at 127.0.0.1 (0 for none)."""
        return 0

    def listed_address(self) -> str:
        """The address ``%colabmagic status`` shows ("" for none)."""
        port = self.loopback_port()
        return f"127.0.0.1:{port}" if port else ""

    def to_info(self) -> Dict[str, Any]:
        """The plain JSON dict for ``ServiceSpec.info``, with the keys shared by every record first."""
        shared = {"group": self.GROUP, "kind": self.KIND, "address": self.listed_address()}
        info: Dict[str, Any] = {key: value for key, value in shared.items() if value}
        for f in fields(self):
            info.update(_written(f, getattr(self, f.name)))
        return info

    @classmethod
    def from_info(cls: Type[R], info: Mapping[str, Any]) -> R:
        """The record in ``info``; a missing key or a value of the wrong type reads as the default."""
        return cls(**_read(cls, info))

    @classmethod
    def of(cls: Type[R], service: supervisor.Service) -> R:
        return cls.from_info(service.info)

    def save(self, service: supervisor.Service) -> None:
        """Write this record over ``service``'s (facts learnt after the start, such as a public URL)."""
        service.update_info(**self.to_info())


@dataclass(frozen=True)
class Listing(Record):
    """What any service's record says for the views across services (status table, stop by group)."""

    group: str = ""
    kind: str = ""
    address: str = ""
    public_url: Optional[str] = None
    public_host: Optional[str] = None
    public_port: Optional[int] = None

    def public(self) -> str:
        """The public address as shown: the URL, else host:port ("" without one)."""
        return self.public_url or (f"{self.public_host}:{self.public_port}" if self.public_host else "")


_HINTS: Dict[type, Dict[str, Any]] = {}


def _hints(cls: type) -> Dict[str, Any]:
    """The fields' types of record class ``cls`` (its annotations evaluated once)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _written(f: Field, value: Any) -> Dict[str, Any]:
    """The keys and plain values field ``f`` holding ``value`` writes (see the field markers)."""
    prefix = f.metadata.get(_FLATTENED)
    if prefix is not None:
        return {prefix + sub.name: _plain(getattr(value, sub.name)) for sub in fields(value)}
    if f.metadata.get(_LEFT_OUT_WHEN_EMPTY) and _empty(value):
        return {}
    return {f.name: _plain(value)}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, tuple, list, Mapping)) and not value)


def _read(cls: type, info: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """The fields of dataclass ``cls`` found in ``info`` (each under ``prefix`` + its name) that fit
    their types, as keyword arguments for ``cls``; a flattened field is built from its own keys."""
    hints = _hints(cls)
    values: Dict[str, Any] = {}
    for f in fields(cls):
        nested = f.metadata.get(_FLATTENED)
        if nested is not None:
            values[f.name] = hints[f.name](**_read(hints[f.name], info, prefix + nested))
        elif prefix + f.name in info:
            value = _coerce(info[prefix + f.name], hints[f.name])
            if value is not _INVALID:
                values[f.name] = value
    return values


def _plain(value: Any) -> Any:
    """A field's value as JSON has it (a tuple as a list, a mapping as a dict)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as the field's type ``hint`` says, or _INVALID."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:  # Optional[X]
        if value is None:
            return None
        for arg in args:
            if arg is not type(None):
                found = _coerce(value, arg)
                if found is not _INVALID:
                    return found
        return _INVALID
    if origin in (dict, collections.abc.Mapping):  # Dict[str, X], Mapping[str, X]: a JSON object
        if not isinstance(value, Mapping):
            return _INVALID
        item = args[1] if len(args) == 2 else Any
        entries = {k: _coerce(v, item) for k, v in value.items() if isinstance(k, str)}
        bad = len(entries) < len(value) or any(v is _INVALID for v in entries.values())
        return _INVALID if bad else entries
    if origin is tuple:  # Tuple[X, ...]
        if not isinstance(value, (list, tuple)):
            return _INVALID
        items = tuple(_coerce(v, args[0]) for v in value)
        return _INVALID if any(i is _INVALID for i in items) else items
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return int(value) if isinstance(value, str) and value.isdigit() else _INVALID
    if hint is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _INVALID
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    return value
