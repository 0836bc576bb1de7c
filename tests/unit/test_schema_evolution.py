"""Schema evolution on made-up message types (README "Schema evolution"): a release writes records,
the next release changes the types, and the new codec reads the old records — by Avro resolution
where it can (a field added with a default, a field dropped), and by an upcaster where it cannot
(a type renamed, a type split in two, a value re-expressed). `flexchain.evolution` refuses a release
that would leave a recorded version unreadable, and records a compatible one as the next version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from flexchain.evolution import check, plan_release, write_release
from flexchain.history import recorded
from flexchain.messages import Envelope, Enveloped, Message
from flexchain.schemas import envelope_schema
from flexchain.serde import Codec, DecodeError, RegistryClient, Upcaster, field_names

# --- release 1 --------------------------------------------------------------------------------------


class Old:
    @dataclass(frozen=True, slots=True)
    class Box:
        weight: int

    @dataclass(frozen=True, slots=True)
    class ItemShipped(Message):
        KEY: ClassVar[str] = "order_id"
        SERVICE: ClassVar[str] = "shop"
        order_id: str
        tracking: str
        boxes: list[Old.Box]

    @dataclass(frozen=True, slots=True)
    class StockAdjusted(Message):
        KEY: ClassVar[str] = "sku"
        SERVICE: ClassVar[str] = "shop"
        sku: str
        delta: int

    @dataclass(frozen=True, slots=True)
    class PriceSet(Message):
        """The price in yuan, as decimal text."""

        KEY: ClassVar[str] = "sku"
        SERVICE: ClassVar[str] = "shop"
        sku: str
        price: str

    @dataclass(frozen=True, slots=True)
    class Note(Message):
        KEY: ClassVar[str] = "note_id"
        SERVICE: ClassVar[str] = "shop"
        note_id: str
        text: str
        legacy: str


# --- release 2 ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Box:
    weight: int
    fragile: bool = False  # added since: old boxes read as not fragile, in the renamed type too


@dataclass(frozen=True, slots=True)
class ParcelSent(Message):
    """ItemShipped, renamed."""

    KEY: ClassVar[str] = "order_id"
    SERVICE: ClassVar[str] = "shop"
    order_id: str
    tracking: str
    boxes: list[Box]
    carrier: str | None = None


@dataclass(frozen=True, slots=True)
class StockAdded(Message):
    KEY: ClassVar[str] = "sku"
    SERVICE: ClassVar[str] = "shop"
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class StockRemoved(Message):
    KEY: ClassVar[str] = "sku"
    SERVICE: ClassVar[str] = "shop"
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class PriceSet(Message):
    """The price in cents."""

    KEY: ClassVar[str] = "sku"
    SERVICE: ClassVar[str] = "shop"
    sku: str
    price: int


@dataclass(frozen=True, slots=True)
class Note(Message):
    KEY: ClassVar[str] = "note_id"
    SERVICE: ClassVar[str] = "shop"
    note_id: str
    text: str
    lang: str = "zh"


OLD: list[type[Message]] = [Old.ItemShipped, Old.StockAdjusted, Old.PriceSet, Old.Note]
NEW: list[type[Message]] = [ParcelSent, StockAdded, StockRemoved, PriceSet, Note]


def _split(record: dict[str, Any]) -> tuple[type[Message], dict[str, Any]]:
    delta = record["delta"]
    return (StockAdded if delta >= 0 else StockRemoved), {**record, "qty": abs(delta)}


def _yuan_text(writer: dict[str, Any]) -> bool:
    return any(f["name"] == "price" and f["type"] == "string" for f in writer["fields"])


UPCASTERS = [
    Upcaster("flexchain.shop.ItemShipped", lambda r: r, target=ParcelSent),  # renamed
    Upcaster("flexchain.shop.StockAdjusted", _split),  # split in two
    Upcaster(  # re-expressed: yuan as decimal text → cents
        "flexchain.shop.PriceSet", lambda r: {**r, "price": int(Decimal(r["price"]) * 100)}, applies=_yuan_text
    ),
]


def envelope(event_type: str, n: int) -> Envelope:
    return Envelope(
        event_id=f"e-{n}",
        event_type=event_type,
        aggregate_id=f"agg-{n}",
        aggregate_version=n,
        business_time=1_767_225_600_000 + n,
        correlation_id=f"c-{n}",
        causation_id=None,
        producer="shop",
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A schemas folder where release 1 was written and recorded."""
    root = tmp_path / "schemas"
    release = plan_release(OLD, [], root)
    assert release.refused == [] and len(release.record) == len(OLD)
    write_release(OLD, release, root)
    return root


def old_records(root: Path) -> list[bytes]:
    """Release 1's codec writes a log: a shipment, two stock moves, a price, a note."""
    codec = Codec(OLD, root=root)
    items: list[Message] = [
        Old.ItemShipped("o-1", "SF123", [Old.Box(1200)]),
        Old.StockAdjusted("mask", 5),
        Old.StockAdjusted("mask", -2),
        Old.PriceSet("mask", "12.50"),
        Old.Note("n-1", "hello", "x"),
    ]
    return [codec.encode(Enveloped(envelope=envelope(type(m).__name__, i), message=m)) for i, m in enumerate(items, start=1)]


def test_a_release_with_upcasters_reads_every_old_record(root: Path) -> None:
    log = old_records(root)
    release = plan_release(NEW, UPCASTERS, root)
    assert release.refused == []
    write_release(NEW, release, root)
    codec = Codec(NEW, root=root, upcasters=UPCASTERS)
    read = [codec.decode(r) for r in log]
    assert [i.message for i in read] == [
        ParcelSent("o-1", "SF123", [Box(1200, False)], None),  # renamed; what it did not have, at any depth: defaults
        StockAdded("mask", 5),  # split by the sign of the old delta
        StockRemoved("mask", 2),
        PriceSet("mask", 1250),  # 12.50 yuan → 1250 cents
        Note("n-1", "hello", "zh"),  # plain Avro resolution: `legacy` skipped, `lang` defaulted
    ]
    assert [i.envelope.event_type for i in read] == ["ParcelSent", "StockAdded", "StockRemoved", "PriceSet", "Note"]
    assert [i.envelope.event_id for i in read] == ["e-1", "e-2", "e-3", "e-4", "e-5"]
    # interleaved with records the new release writes, a fold sees one consistent history
    new = [
        codec.encode(Enveloped(envelope=envelope(type(m).__name__, 9), message=m))
        for m in (StockAdded("mask", 3), PriceSet("mask", 990))
    ]
    stock, price = 0, 0
    for wire in [log[1], new[0], log[2], log[3], new[1]]:
        m = codec.decode(wire).message
        stock += m.qty if isinstance(m, StockAdded) else -m.qty if isinstance(m, StockRemoved) else 0
        price = m.price if isinstance(m, PriceSet) else price
    assert (stock, price) == (6, 990)
    assert check(NEW, UPCASTERS, root) == []  # `flexchain schemas check` on the new release


def test_without_upcasters_the_release_is_refused_with_reasons_and_nothing_written(root: Path) -> None:
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    release = plan_release(NEW, [], root)
    reasons = "\n".join(release.refused)
    assert "writer type flexchain.shop.ItemShipped has no class" in reasons  # renamed away
    assert "writer type flexchain.shop.StockAdjusted has no class" in reasons  # split away
    assert "/price: writer string cannot be read as long" in reasons  # re-expressed
    assert "Note" not in reasons  # a compatible change is not refused
    with pytest.raises(ValueError, match="refused"):
        write_release(NEW, release, root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_the_codec_without_upcasters_says_why_each_old_record_cannot_be_read(root: Path) -> None:
    log = old_records(root)
    write_release(NEW, plan_release(NEW, UPCASTERS, root), root)
    codec = Codec(NEW, root=root, upcasters=[])
    with pytest.raises(DecodeError, match=r"shop/ItemShipped\.v1.*writer type flexchain\.shop\.ItemShipped has no class"):
        codec.decode(log[0])
    with pytest.raises(
        DecodeError, match=r"cannot be read as the current PriceSet \(/price: writer string cannot be read as long\)"
    ):
        codec.decode(log[3])
    assert codec.decode(log[4]).message == Note("n-1", "hello", "zh")  # resolution needs no upcaster


def test_an_upcaster_that_gives_too_little_or_an_unknown_class_is_a_decode_error(root: Path) -> None:
    log = old_records(root)
    write_release(NEW, plan_release(NEW, UPCASTERS, root), root)
    lazy = [Upcaster("flexchain.shop.StockAdjusted", lambda r: (StockAdded, {"sku": r["sku"]}))]
    with pytest.raises(DecodeError, match=r"gave StockAdded no value for \['qty'\]"):
        Codec(NEW, root=root, upcasters=lazy).decode(log[1])
    elsewhere = [Upcaster("flexchain.shop.StockAdjusted", lambda r: (Old.Note, r))]
    with pytest.raises(DecodeError, match=r"gave flexchain\.shop\.Note, which this codec does not read"):
        Codec([StockAdded, StockRemoved], root=root, upcasters=elsewhere).decode(log[1])
    boom = [Upcaster("flexchain.shop.StockAdjusted", lambda r: 1 / 0)]  # type: ignore[arg-type,return-value]
    with pytest.raises(DecodeError, match="ZeroDivisionError"):
        Codec(NEW, root=root, upcasters=boom).decode(log[1])


def test_a_compatible_change_is_recorded_as_the_next_version(root: Path) -> None:
    release = plan_release(NEW, UPCASTERS, root)
    write_release(NEW, release, root)
    history = recorded(root)
    assert [v.number for v in history[("shop", "Note")]] == [1, 2]
    assert [v.number for v in history[("shop", "ParcelSent")]] == [1]  # a new type starts at v1
    assert [v.number for v in history[("shop", "ItemShipped")]] == [1]  # the old name's history stays
    v2 = history[("shop", "Note")][1].schema()
    assert "lang" in field_names(v2) and v2["fields"][0]["type"] == envelope_schema()  # self-contained
    assert json.loads((root / "shop" / "Note.avsc").read_text())["fields"][-1]["name"] == "lang"
    again = plan_release(NEW, UPCASTERS, root)  # nothing changed since: nothing to record
    assert again.record == [] and again.unchanged == len(NEW)


# --- the registry path -----------------------------------------------------------------------------


class _Registry(RegistryClient):
    """A registry in memory: ids from 1, GET answers what was registered (or fails on demand)."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.down = False
        self.gets = 0

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        for sid, known in self.schemas.items():
            if known == schema:
                return sid
        self.schemas[len(self.schemas) + 1] = schema
        return len(self.schemas)

    def schema_by_id(self, schema_id: int) -> dict[str, Any] | None:
        self.gets += 1
        if self.down:
            raise httpx.ConnectError("registry down")
        return self.schemas.get(schema_id)


def test_the_registry_names_the_writer_schema_once_per_id(root: Path) -> None:
    registry = _Registry()
    old = Codec(OLD, registry=registry, root=root)  # release 1 registered its schemas
    wire = old.encode(Enveloped(envelope=envelope("Note", 1), message=Old.Note("n-1", "hi", "x")))
    write_release(NEW, plan_release(NEW, UPCASTERS, root), root)
    new = Codec(NEW, registry=registry, root=root, upcasters=UPCASTERS)
    registry.down = True
    with pytest.raises(DecodeError, match="registry did not answer") as info:
        new.decode(wire)
    assert info.value.transient  # may decode later: not remembered as unreadable
    registry.down = False
    assert new.decode(wire).message == Note("n-1", "hi", "zh")
    gets = registry.gets
    assert new.decode(wire).message == Note("n-1", "hi", "zh")
    assert registry.gets == gets, "the writer schema is asked for once per id"


def test_an_id_the_registry_does_not_know_is_looked_up_in_the_history(root: Path) -> None:
    """Records written before the registry was configured carry local ids: the history reads them."""
    wire = Codec(OLD, root=root).encode(Enveloped(envelope=envelope("Note", 1), message=Old.Note("n-1", "hi", "x")))
    write_release(NEW, plan_release(NEW, UPCASTERS, root), root)
    new = Codec(NEW, registry=_Registry(), root=root, upcasters=UPCASTERS)
    assert new.decode(wire).message == Note("n-1", "hi", "zh")
    unknown = b"\x00" + (12345).to_bytes(4, "big") + wire[5:]
    with pytest.raises(
        DecodeError, match="unknown schema id 12345: not a current schema, not in the schema registry or the schema history"
    ):
        new.decode(unknown)
