"""A typed data codec for service states: `dumps(obj, tp)` / `loads(data, tp)`, driven by type hints.

Snapshots are data, never code (ARCHITECTURE). Nothing in a blob can name a class to import or a
callable to run: the shape of what is decoded comes from the type hints of `tp` (a dataclass or a
container type) in the running code, and the bytes only fill it in. The wire format is MessagePack
(msgspec): msgspec validates every value against the expected type in C, and it encodes and decodes
dataclasses built only of plain types directly, so the common case never enters Python per object.

What the five services' states hold — and exactly what is supported (anything else is a TypeError
naming the field, when the codec for a type is first built):

* `int`, `str`, `bool`, `bytes`, `None`, `Decimal` (exact: its string form);
* `X | None`; no other unions;
* `list[X]`, `set[X]`, `tuple[X, ...]`, `tuple[A, B, ...]`, `dict[K, V]` with `K` `str` or `int`;
* dataclasses (frozen or not, slots or not) and `NamedTuple`s of the above; a dataclass field with
  `init=False` is derived — its class's `__post_init__` builds it from the other fields (loyalty's
  member index over its list of ids) — and is not written: decoded, it is built again;
* `array.array` (hinted `array[int]`): its type code, item size and little-endian bytes; the type
  code is checked against the element type of the hint;
* a field hinted with the abstract `flexchain.messages.Message` (the order's history): each value
  carries a tag, the qualified name of its class plus a digest of its fields, which is looked up
  among the dataclass subclasses of `Message` the process has loaded — a closed set known to the
  code; an unknown tag is a decode error, never an import.

Dataclasses whose whole type is made of plain types travel as MessagePack maps (field names),
decoded by msgspec straight into the class; the others (a field holding an array or a `Message`)
as arrays in field order, built by generated code. Each blob starts with the codec layout version
and a fingerprint of the type's structure (class names, field names and types, recursively):
a blob written for another shape is refused as foreign (:class:`ForeignFormatError`) before any of
it is decoded, so a state class changed without a new `state_format` cannot be filled wrongly.

Not preserved (on purpose): object identity. Two fields referring to one mutable object come back
as two equal objects; no state shares mutable objects (the round-trip-then-fold property tests
check it), and set iteration order may differ (it already differs between processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import sys
import threading
import types
import typing
from array import array
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, Generic, TypeVar, Union

import msgspec

from flexchain.fold import Applied, PartitionState
from flexchain.messages import Message

LAYOUT = 1  # the codec's own layout; a change makes every older blob foreign
Conv = Callable[[Any], Any]
T = TypeVar("T")


class StateDecodeError(ValueError):
    """The bytes are not a value of the expected type (corrupt, truncated or of another shape)."""


class ForeignFormatError(StateDecodeError):
    """The blob was written by another codec layout or for a type of another structure."""


class _ArrayOf(Generic[T]):
    """What `array[int]` in a hint evaluates to (array.array is not subscriptable before 3.12)."""


_ARRAY_CODES = {int: frozenset("bBhHiIlLqQ"), float: frozenset("fd")}
_SCALARS: dict[Any, str] = {int: "int", str: "str", bool: "bool", bytes: "bytes", type(None): "none"}
_KEYS = (str, int)


@dataclasses.dataclass(frozen=True)
class _Codec:
    """How one type travels: `enc` value → wire tree, `dec` wire tree (as `wire` decodes) → value.
    `enc`/`dec` None means the identity (msgspec encodes and decodes the value itself)."""

    wire: Any
    enc: Conv | None
    dec: Conv | None
    shape: str  # the structure, for the fingerprint

    @property
    def native(self) -> bool:
        return self.enc is None and self.dec is None


_CACHE: dict[Any, _Codec] = {}
_BUILDING: set[Any] = set()
_LOCK = threading.RLock()


def _hints(cls: type) -> dict[str, Any]:
    """The class's evaluated type hints, where `array[int]` (from `from array import array`)
    evaluates to `_ArrayOf[int]`; names resolve in each class's module, as `typing` does."""
    names: dict[str, Any] = {}
    for base in cls.__mro__:
        module = sys.modules.get(base.__module__)
        if module is not None:
            names.update({k: _ArrayOf for k, v in vars(module).items() if v is array})
    try:
        return typing.get_type_hints(cls, localns=names)
    except Exception as exc:  # a hint that does not evaluate
        raise TypeError(f"{cls.__qualname__}: type hints do not evaluate: {exc}") from exc


def _codec(tp: Any, where: str) -> _Codec:
    with _LOCK:
        got = _CACHE.get(tp)
        if got is not None:
            return got
        if tp in _BUILDING:
            raise TypeError(f"{where}: recursive type {tp!r} is not supported")
        _BUILDING.add(tp)
        try:
            got = _build(tp, where)
        finally:
            _BUILDING.discard(tp)
        _CACHE[tp] = got
        return got


def _build(tp: Any, where: str) -> _Codec:
    if tp in _SCALARS:
        return _Codec(tp, None, None, _SCALARS[tp])
    if tp is Decimal:
        return _Codec(Decimal, None, None, "decimal")
    if tp is array:
        return _array_codec(None, where)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is _ArrayOf:
        return _array_codec(args[0], where)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"{where}: only `X | None` unions are supported, got {tp!r}")
        return _optional(_codec(rest[0], where), tp)
    if origin is list or origin is set:
        if len(args) != 1:
            raise TypeError(f"{where}: {tp!r} needs one item type")
        return _sequence(origin, _codec(args[0], f"{where}[]"), tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(tuple, _codec(args[0], f"{where}[]"), tp)
        if not args or Ellipsis in args:
            raise TypeError(f"{where}: unsupported tuple type {tp!r}")
        return _fixed_tuple([_codec(a, f"{where}[{i}]") for i, a in enumerate(args)], tp)
    if origin is dict:
        key, value = args
        if key not in _KEYS:
            raise TypeError(f"{where}: dict keys must be str or int, got {key!r}")
        return _mapping(key, _codec(value, f"{where}[]"), tp)
    if isinstance(tp, type) and origin is None:
        if issubclass(tp, tuple) and hasattr(tp, "_fields"):
            return _named_tuple(tp, where)
        if dataclasses.is_dataclass(tp):
            return _dataclass(tp, where)
        if tp is Message or (issubclass(tp, Message) and not dataclasses.is_dataclass(tp)):
            return _poly(tp).codec()
    raise TypeError(f"{where}: type {tp!r} is not supported by the state codec")


def _optional(inner: _Codec, tp: Any) -> _Codec:
    shape = f"optional[{inner.shape}]"
    if inner.native:
        return _Codec(tp, None, None, shape)
    enc, dec = inner.enc or _ident, inner.dec or _ident
    return _Codec(inner.wire | None, lambda v: None if v is None else enc(v), lambda v: None if v is None else dec(v), shape)


def _ident(v: Any) -> Any:
    return v


def _sequence(kind: type, inner: _Codec, tp: Any) -> _Codec:
    shape = f"{kind.__name__}[{inner.shape}]"
    if inner.native:
        return _Codec(tp, None, None, shape)
    enc, dec = inner.enc or _ident, inner.dec or _ident

    def out(v: Any) -> list[Any]:
        return [enc(x) for x in v]

    if kind is tuple:
        return _Codec(types.GenericAlias(tuple, (inner.wire, ...)), out, lambda v: tuple([dec(x) for x in v]), shape)
    if kind is set:
        return _Codec(types.GenericAlias(list, (inner.wire,)), out, lambda v: {dec(x) for x in v}, shape)
    return _Codec(types.GenericAlias(list, (inner.wire,)), out, lambda v: [dec(x) for x in v], shape)


def _fixed_tuple(items: list[_Codec], tp: Any) -> _Codec:
    shape = f"tuple[{','.join(c.shape for c in items)}]"
    if all(c.native for c in items):
        return _Codec(tp, None, None, shape)
    encs = [c.enc or _ident for c in items]
    decs = [c.dec or _ident for c in items]
    wire = types.GenericAlias(tuple, tuple(c.wire for c in items))
    return _Codec(
        wire,
        lambda v: [e(x) for e, x in zip(encs, v, strict=True)],
        lambda v: tuple([d(x) for d, x in zip(decs, v, strict=True)]),
        shape,
    )


def _mapping(key: type, inner: _Codec, tp: Any) -> _Codec:
    shape = f"dict[{_SCALARS[key]},{inner.shape}]"
    if inner.native:
        return _Codec(tp, None, None, shape)
    enc, dec = inner.enc or _ident, inner.dec or _ident
    return _Codec(
        types.GenericAlias(dict, (key, inner.wire)),
        lambda v: {k: enc(x) for k, x in v.items()},
        lambda v: {k: dec(x) for k, x in v.items()},
        shape,
    )


def _array_codec(item: Any, where: str) -> _Codec:
    if item is None:
        codes = _ARRAY_CODES[int] | _ARRAY_CODES[float]
    elif item in _ARRAY_CODES:
        codes = _ARRAY_CODES[item]
    else:
        raise TypeError(f"{where}: array of {item!r} is not supported")
    swap = sys.byteorder != "little"

    def enc(a: Any) -> Any:
        if type(a) is not array or a.typecode not in codes:
            raise TypeError(f"{where}: expected an array with a type code in {''.join(sorted(codes))}, got {a!r:.60}")
        if swap:
            a = array(a.typecode, a)
            a.byteswap()
        return (a.typecode, a.itemsize, a.tobytes())

    def dec(v: tuple[str, int, bytes]) -> Any:
        code, size, data = v
        if code not in codes:
            raise StateDecodeError(f"array type code {code!r} not allowed here")
        out = array(code)
        if out.itemsize != size:
            raise StateDecodeError(f"array {code!r}: item size {size} written, {out.itemsize} here")
        out.frombytes(data)
        if swap:
            out.byteswap()
        return out

    name = getattr(item, "__name__", "any")
    return _Codec(tuple[str, int, bytes], enc, dec, f"array[{name}]")


def _named_tuple(cls: type, where: str) -> _Codec:
    hints = typing.get_type_hints(cls)
    fields: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
    items = [_codec(hints[f], f"{cls.__qualname__}.{f}") for f in fields]
    shape = f"{cls.__module__}.{cls.__qualname__}({','.join(f'{f}:{c.shape}' for f, c in zip(fields, items, strict=True))})"
    if all(c.native for c in items):
        return _Codec(cls, None, None, shape)
    raise TypeError(f"{where}: NamedTuple {cls.__qualname__} with non-plain fields is not supported")


def _dataclass(cls: type, where: str) -> _Codec:
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    if not params.init:
        raise TypeError(f"{where}: dataclass {cls.__qualname__} has no generated __init__")
    hints = _hints(cls)
    every = dataclasses.fields(cls)
    # a field with init=False is derived: `__post_init__` builds it from the others (an index over a
    # list, say). It is not in the blob, and a decoded value gets it as a new one does.
    derived = [f.name for f in every if not f.init]
    if derived and not hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__qualname__}: init=False fields ({', '.join(derived)}) need a __post_init__ to derive them")
    fields = [f for f in every if f.init]
    items = [_codec(hints[f.name], f"{cls.__qualname__}.{f.name}") for f in fields]
    body = ",".join(f"{f.name}:{c.shape}" for f, c in zip(fields, items, strict=True))
    shape = f"{cls.__module__}.{cls.__qualname__}{{{body}{''.join(f',{n}:derived' for n in derived)}}}"
    if all(c.native for c in items) and not derived:
        try:
            msgspec.msgpack.Decoder(cls)  # msgspec must read the hints the same way
        except Exception as exc:
            raise TypeError(f"{where}: {cls.__qualname__} is not decodable by msgspec: {exc}") from exc
        return _Codec(cls, None, None, shape)
    # generated straight-line code: `[o.a, e1(o.b)]` and `cls(r[0], d1(r[1]))`
    env: dict[str, Any] = {"cls": cls, "TypeError": TypeError}
    to_parts: list[str] = []
    from_parts: list[str] = []
    for i, (f, c) in enumerate(zip(fields, items, strict=True)):
        value = f"o.{f.name}"
        if c.enc is not None:
            env[f"e{i}"] = c.enc
            value = f"e{i}({value})"
        to_parts.append(value)
        arg = f"r[{i}]"
        if c.dec is not None:
            env[f"d{i}"] = c.dec
            arg = f"d{i}({arg})"
        from_parts.append(f"{f.name}={arg}" if f.kw_only else arg)
    exec(  # generated from the type hints only
        "def enc(o):\n"
        "    if type(o) is not cls:\n"
        f"        raise TypeError('{cls.__qualname__}: got ' + type(o).__qualname__)\n"
        f"    return [{', '.join(to_parts)}]\n"
        f"def dec(r): return cls({', '.join(from_parts)})\n",
        env,
    )
    wire = types.GenericAlias(tuple, tuple(c.wire for c in items))
    return _Codec(wire, env["enc"], env["dec"], shape)


class _Poly:
    """A field hinted with an abstract `Message` class: each value is `[tag, value]`, the tag
    chosen among the dataclass subclasses of that class loaded in this process."""

    def __init__(self, base: type) -> None:
        self.base = base
        self.by_class: dict[type, tuple[str, Conv | None]] = {}
        self.by_tag: dict[str, tuple[msgspec.msgpack.Decoder[Any], Conv | None]] = {}
        self.scanned = -1

    def codec(self) -> _Codec:
        return _Codec(tuple[str, msgspec.Raw], self.enc, self.dec, f"poly[{self.base.__module__}.{self.base.__qualname__}]")

    def _scan(self) -> None:
        with _LOCK:
            found: list[type] = []
            todo = [self.base]
            while todo:
                c = todo.pop()
                subs: list[type] = c.__subclasses__()
                todo.extend(subs)
                found.extend(s for s in subs if dataclasses.is_dataclass(s))
            if len(found) == self.scanned:
                return
            self.scanned = len(found)
            tags: dict[str, list[type]] = {}
            members: dict[type, _Codec] = {}
            for c in found:
                try:
                    member = members[c] = _codec(c, c.__qualname__)
                except TypeError:
                    continue  # not encodable: a value of it is refused when met
                digest = hashlib.sha256(member.shape.encode()).hexdigest()[:12]
                tags.setdefault(f"{c.__module__}.{c.__qualname__}:{digest}", []).append(c)
            for tag, classes in tags.items():
                if len(classes) > 1:  # `dataclass(slots=True)` leaves the replaced class alive until collected
                    classes = [c for c in classes if getattr(sys.modules.get(c.__module__), c.__qualname__, None) is c]
                if len(classes) != 1:
                    continue  # two live classes share a name and a shape: neither is accepted
                c = classes[0]
                member = members[c]
                self.by_class[c] = (tag, member.enc)
                self.by_tag[tag] = (msgspec.msgpack.Decoder(member.wire), member.dec)

    def enc(self, v: Any) -> Any:
        got = self.by_class.get(type(v))
        if got is None:
            self._scan()
            got = self.by_class.get(type(v))
            if got is None:
                raise TypeError(f"{type(v).__qualname__} is not a dataclass subclass of {self.base.__qualname__}")
        tag, enc = got
        return (tag, v if enc is None else enc(v))

    def dec(self, v: tuple[str, msgspec.Raw]) -> Any:
        tag, raw = v
        got = self.by_tag.get(tag)
        if got is None:
            self._scan()
            got = self.by_tag.get(tag)
            if got is None:
                raise StateDecodeError(f"unknown {self.base.__qualname__} tag {tag!r}")
        decoder, dec = got
        value = decoder.decode(raw)
        return value if dec is None else dec(value)


_POLYS: dict[type, _Poly] = {}


def _poly(base: type) -> _Poly:
    got = _POLYS.get(base)
    if got is None:
        got = _POLYS[base] = _Poly(base)
    return got


# --- the public codec ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Compiled:
    codec: _Codec
    fingerprint: str
    decoder: msgspec.msgpack.Decoder[Any]


_COMPILED: dict[Any, _Compiled] = {}
_ENCODER = msgspec.msgpack.Encoder()
_HEADER = msgspec.msgpack.Decoder(tuple[int, str, msgspec.Raw])


def _compiled(tp: Any) -> _Compiled:
    got = _COMPILED.get(tp)
    if got is None:
        codec = _codec(tp, getattr(tp, "__qualname__", repr(tp)))
        fp = hashlib.sha256(f"{LAYOUT}/{codec.shape}".encode()).hexdigest()[:32]
        got = _COMPILED[tp] = _Compiled(codec, fp, msgspec.msgpack.Decoder(codec.wire))
    return got


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while millions of objects are made: it would scan the growing heap over and over
    (a 100k-aggregate partition decodes ~5x faster). The objects are examined by later collections."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fingerprint(tp: Any) -> str:
    """A digest of the structure of `tp` (class names, field names and types, recursively)."""
    return _compiled(tp).fingerprint


def dumps(obj: Any, tp: Any) -> bytes:
    """`obj` (a value of type `tp`) as bytes; a TypeError names what is not supported."""
    c = _compiled(tp)
    with _gc_paused():
        value = obj if c.codec.enc is None else c.codec.enc(obj)
        try:
            return _ENCODER.encode((LAYOUT, c.fingerprint, value))
        except (TypeError, OverflowError, msgspec.EncodeError) as exc:
            raise TypeError(f"{getattr(tp, '__qualname__', tp)!s}: cannot encode: {exc}") from exc


def loads(data: bytes, tp: Any) -> Any:
    """The value of type `tp` in `data`; StateDecodeError (ForeignFormatError) if it is not one."""
    c = _compiled(tp)
    try:
        layout, fp, payload = _HEADER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StateDecodeError(f"not a state blob: {exc}") from exc
    if layout != LAYOUT or fp != c.fingerprint:
        raise ForeignFormatError(f"written for layout {layout}, type {fp}; this is layout {LAYOUT}, type {c.fingerprint}")
    try:
        with _gc_paused():
            value = c.decoder.decode(payload)
            return value if c.codec.dec is None else c.codec.dec(value)
    except StateDecodeError:
        raise
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError, IndexError, KeyError) as exc:
        raise StateDecodeError(f"does not decode into {getattr(tp, '__qualname__', tp)!s}: {exc}") from exc


# --- a partition of the kernel (flexchain.fold.PartitionState) ------------------------------------


def partition_type(state_type: Any) -> Any:
    """The type of a snapshotted partition: (state, seen, versions, newest, next offset)."""
    return tuple[state_type, dict[str, Applied], dict[str, int], int, int]


def encode_partition(ps: PartitionState, state_type: Any) -> bytes:
    """A partition's state and what the kernel keeps with it, as bytes (not `since_snapshot`)."""
    if type(ps.state) is not state_type:
        raise TypeError(f"the state is a {type(ps.state).__qualname__}, not a {getattr(state_type, '__qualname__', state_type)}")
    return dumps((ps.state, ps.seen, ps.versions, ps.newest, ps.next_offset), partition_type(state_type))


def decode_partition(blob: bytes, state_type: Any) -> PartitionState:
    """The partition in `blob`; StateDecodeError (or ForeignFormatError) if it is not one of `state_type`."""
    state, seen, versions, newest, next_offset = loads(blob, partition_type(state_type))
    return PartitionState(state, seen, versions, newest, next_offset)
