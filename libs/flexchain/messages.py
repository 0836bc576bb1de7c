"""Messages (commands and events) and the envelope every one of them travels in.

A service's domain defines its messages as frozen dataclasses deriving from :class:`Message`.
Each class names the field that holds its aggregate id (``KEY``) — the Kafka record key — and
its Avro schema lives in ``schemas/<service>/<Name>.avsc`` (a contract test keeps both in step).

The conversion to and from plain records (what fastavro reads and writes) is compiled once per
class from its type hints, so encoding a message costs a handful of dict operations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, TypeVar, Union

ID_NAMESPACE = uuid.UUID("8b5f4a52-6a43-4b0a-9a1e-5c1f3c3f0f11")
_ID_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def derived_id(cause: str, index: int, scope: str = "") -> str:
    """A deterministic id for the ``index``-th message that ``scope`` derived from ``cause``.

    Re-processing the same cause (after a crash, in a replay) yields the same ids, so a
    derived event can be recognised as already emitted (R-X-2). The scope (the service, or its
    router) keeps apart what two services derive from one event: inventory's ReserveStock and
    loyalty's QuoteMemberDiscount both follow from one OrderPlaced, and must not share an id.

    The string is ``str(uuid.uuid5(ID_NAMESPACE, f"{scope}/{cause}/{index}"))`` (RFC 4122, version 5),
    built from the SHA-1 digest without a `uuid.UUID` object: 4 µs against 12, and a command's step
    derives an id for each event (uuid5 and its `__str__` were ≈ 12 % of the inventory service's
    profile under a backlog)."""
    digest = bytearray(hashlib.sha1(_ID_NAMESPACE_BYTES + f"{scope}/{cause}/{index}".encode(), usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # variant RFC 4122
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """Metadata of one message; ``business_time`` is milliseconds since the epoch, UTC (R-X-1)."""

    event_id: str
    event_type: str
    aggregate_id: str
    aggregate_version: int
    business_time: int
    correlation_id: str
    causation_id: str | None
    producer: str


class Message:
    """Base of every command and event. Subclasses are frozen dataclasses."""

    KEY: ClassVar[str] = ""
    SERVICE: ClassVar[str] = ""
    #: the names this type was written under before it was renamed: records in the log keep them
    #: (their schema, envelope ``event_type`` and ``type`` header), and are read as this class
    FORMERLY: ClassVar[tuple[str, ...]] = ()

    @property
    def key(self) -> str:
        return str(getattr(self, self.KEY)) if self.KEY else ""

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    @classmethod
    def full_name(cls) -> str:
        return f"flexchain.{cls.SERVICE}.{cls.__name__}"

    @classmethod
    def former_full_names(cls) -> list[str]:
        """The Avro full names of the records written under this type's former names."""
        return [f"flexchain.{cls.SERVICE}.{name}" for name in cls.FORMERLY]


M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Enveloped:
    """A message with its envelope: what flows on a topic."""

    envelope: Envelope
    message: Message


# --- record conversion -------------------------------------------------------------------------

Conv = Callable[[Any], Any]


def _ident(v: Any) -> Any:
    return v


def _decimal_out(v: Decimal) -> str:
    return str(v)


def _converters(tp: Any) -> tuple[Conv, Conv]:
    """(to_record, from_record) for one annotated type."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"only Optional[X] unions are supported, got {tp}")
        to_r, from_r = _converters(args[0])
        if to_r is _ident and from_r is _ident:
            return _ident, _ident
        return (lambda v: None if v is None else to_r(v)), (lambda v: None if v is None else from_r(v))
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1]
        to_r, from_r = _converters(item)
        if origin is tuple:
            return (lambda v: [to_r(x) for x in v]), (lambda v: tuple(from_r(x) for x in v))
        return (lambda v: [to_r(x) for x in v]), (lambda v: [from_r(x) for x in v])
    if origin is dict:
        _, val = typing.get_args(tp)
        to_r, from_r = _converters(val)
        return (lambda v: {k: to_r(x) for k, x in v.items()}), (lambda v: {k: from_r(x) for k, x in v.items()})
    if tp is Decimal:
        return _decimal_out, Decimal
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return to_record, _nested_from(tp)
    return _ident, _ident


def _nested_from(tp: type) -> Conv:
    """from_record of a nested record type, compiled on first use then called directly."""

    def nested(v: Any) -> Any:
        conv = _FROM.get(tp)
        if conv is None:
            _compile(tp)
            conv = _FROM[tp]
        return conv(v)

    return nested


_TO: dict[type, Callable[[Any], dict[str, Any]]] = {}
_FROM: dict[type, Callable[[dict[str, Any]], Any]] = {}


def _compile(cls: type) -> None:
    """Generate the two converters of a dataclass once: straight-line code, no per-field loop.

    Decoding is on the hot path of every rebuild, so `from_record` for a class with fields
    `a: str, b: Decimal` becomes straight-line code. A slotted dataclass with no ``__post_init__``
    (every message) is filled through its slots, as its own ``__init__`` would, without the
    keyword call (messages are kw_only, and matching keywords cost a rebuild 10 % of its time):
    ``o = new(cls); s0(o, r["a"]); s1(o, c1(r["b"]))``. Any other dataclass is built by keyword."""
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {"cls": cls, "new": object.__new__}
    fields = dataclasses.fields(cls)
    # every field a slot (its descriptor, wherever in the MRO it is declared), and nothing to run after
    slots = [inspect.getattr_static(cls, f.name, None) for f in fields]
    slotted = not hasattr(cls, "__post_init__") and all(isinstance(d, types.MemberDescriptorType) for d in slots)
    to_parts: list[str] = []
    from_parts: list[str] = []
    for i, f in enumerate(fields):
        to_r, from_r = _converters(hints[f.name])
        key = repr(f.name)
        if to_r is _ident:
            to_parts.append(f"{key}: o.{f.name}")
        else:
            env[f"t{i}"] = to_r
            to_parts.append(f"{key}: t{i}(o.{f.name})")
        value = f"r[{key}]"
        if from_r is not _ident:
            env[f"f{i}"] = from_r
            value = f"f{i}({value})"
        if slotted:
            env[f"s{i}"] = slots[i].__set__  # the slot's descriptor: frozen only guards setattr
            from_parts.append(f"s{i}(o, {value})")
        else:
            from_parts.append(f"{f.name}={value}")
    exec(f"def to(o): return {{{', '.join(to_parts)}}}", env)  # generated from type hints
    if slotted:
        exec("def fr(r):\n    o = new(cls)\n" + "".join(f"    {part}\n" for part in from_parts) + "    return o", env)
    else:
        exec(f"def fr(r): return cls({', '.join(from_parts)})", env)
    _TO[cls] = env["to"]
    _FROM[cls] = env["fr"]


def to_record(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a plain dict (Decimals as strings, nested records as dicts)."""
    conv = _TO.get(type(obj))
    if conv is None:
        _compile(type(obj))
        conv = _TO[type(obj)]
    return conv(obj)


T = TypeVar("T")


def from_record(cls: type[T], record: dict[str, Any]) -> T:
    conv = _FROM.get(cls)
    if conv is None:
        _compile(cls)
        conv = _FROM[cls]
    result: T = conv(record)
    return result
