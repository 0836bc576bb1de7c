"""Contract: the event store can always read its own past (issue 12, README "Schema evolution").

Every recorded version of every message schema (``schemas/history/``) — written with its own id, as
a producer of that release did — decodes into today's class, interleaved with records written with
the current schemas; the values the old record held arrive unchanged, what it lacked takes the
class's default (or its upcaster's value). The history is complete (each type's last version is its
current schema) and ``flexchain schemas check`` passes on the repo.
"""

from __future__ import annotations

import dataclasses
import io
import struct
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from flexchain.catalog import all_messages, all_upcasters
from flexchain.evolution import check
from flexchain.history import Version, recorded, writer_index
from flexchain.messages import Enveloped, Message, to_record
from flexchain.schemas import SCHEMAS_DIR, load_json, local_schema_id, schema_path
from flexchain.serde import Codec, DecodeError, Upcaster
from services.order import domain as order_domain
from services.order.messages import OrderConfirmed, OrderLine, OrderPlaced

MESSAGES = all_messages()
# a renamed type's old versions (recorded under the name they were written with) read as the new class
BY_NAME = {name: cls for cls in MESSAGES for name in (cls.full_name(), *cls.former_full_names())}
RENAMED = [(cls, old) for cls in MESSAGES for old in cls.FORMERLY]
HISTORY = recorded(SCHEMAS_DIR)
VERSIONS = [v for versions in HISTORY.values() for v in versions]
UPCASTERS = all_upcasters()


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(MESSAGES)


class Values:
    """Plausible, distinct values for an Avro schema: every string a different number ("17": an id
    and a valid decimal alike), every long a different number, one item per array and map."""

    def __init__(self, seed: int = 0) -> None:
        self.n = seed

    def next(self) -> int:
        self.n += 1
        return self.n

    def of(self, t: Any, named: dict[str, Any]) -> Any:
        if isinstance(t, list):
            return self.of(next((b for b in t if b != "null"), "null"), named)
        if isinstance(t, str):
            plain = {"null": None, "boolean": self.next() % 2 == 0, "int": self.next(), "long": self.next()}
            if t in plain:
                return plain[t]
            if t == "string":
                return str(self.next())
            if t in ("float", "double"):
                return float(self.next())
            return self.of(named[t], named)
        kind = t["type"]
        if kind == "record":
            named[t["name"]] = t
            named[f"{t.get('namespace', '')}.{t['name']}"] = t
            return {f["name"]: self.of(f["type"], named) for f in t["fields"]}
        if kind == "enum":
            return t["symbols"][0]
        if kind == "array":
            return [self.of(t["items"], named)]
        if kind == "map":
            return {str(self.next()): self.of(t["values"], named)}
        return self.of(kind, named)


def write_old(version: Version, seed: int = 0) -> tuple[bytes, dict[str, Any]]:
    """A record written with an old schema under its own id (as its release wrote it), and its values."""
    schema = version.schema()
    record = Values(seed).of(schema, {})
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, local_schema_id(schema, SCHEMAS_DIR)))
    schemaless_writer(buf, parse_schema(schema), record, strict=True)
    return buf.getvalue(), record


def upcaster_for(version: Version) -> Upcaster | None:
    schema = version.schema()
    return next((u for u in UPCASTERS if u.covers(version.full_name, schema)), None)


def test_every_type_has_a_history_and_its_last_version_is_the_current_schema() -> None:
    assert {(cls.SERVICE, cls.__name__) for cls in MESSAGES} <= set(HISTORY)
    assert len(VERSIONS) > len(MESSAGES), "some types have evolved"
    assert check(MESSAGES, UPCASTERS) == []  # `flexchain schemas check`


def test_the_history_index_gives_each_version_the_id_its_release_wrote_with() -> None:
    index = writer_index(SCHEMAS_DIR)
    ids = {v.label(): local_schema_id(v.schema(), SCHEMAS_DIR) for v in VERSIONS}  # as the schema-history check computes them
    assert set(index) == set(ids.values())
    for label, sid in ids.items():  # versions that differ only in their docs share an id (the canonical form drops docs)
        version, schema = index[sid]
        assert label.split(".v")[0] == version.label().split(".v")[0]
        assert local_schema_id(schema, SCHEMAS_DIR) == sid
    current = {local_schema_id(load_json(schema_path(cls))) for cls in MESSAGES}
    assert current <= set(index), "every current schema is a recorded version"


@pytest.mark.parametrize("version", VERSIONS, ids=[v.label() for v in VERSIONS])
def test_every_recorded_version_decodes_into_todays_class(codec: Codec, version: Version) -> None:
    cls = BY_NAME[version.full_name]
    wire, written = write_old(version)
    item = codec.decode(wire)
    assert type(item.message) is cls
    assert dataclasses.asdict(item.envelope) == written["envelope"]
    decoded = to_record(item.message)
    defaults = {f["name"]: f.get("default") for f in load_json(schema_path(cls))["fields"]}
    upcaster = upcaster_for(version)
    filled = upcaster.upcast({}) if upcaster is not None else {}
    assert isinstance(filled, dict)
    for f in dataclasses.fields(cls):
        if f.name in written:  # the old record had it: the value arrives unchanged
            assert decoded[f.name] == _as_current(written[f.name], decoded[f.name]), f"{version.label()}: {f.name}"
        elif f.name in filled:  # an upcaster gives it
            assert decoded[f.name] == filled[f.name], f"{version.label()}: {f.name} from the upcaster"
        else:  # the current schema's default (Avro resolution)
            assert decoded[f.name] == defaults[f.name], f"{version.label()}: {f.name} takes its default"


def _as_current(written: Any, decoded: Any) -> Any:
    """The written value as the current class holds it: nested records keep only today's fields."""
    if isinstance(written, dict) and isinstance(decoded, dict):
        return {k: _as_current(written[k], v) if k in written else v for k, v in decoded.items()}
    if isinstance(written, list) and isinstance(decoded, list):
        return [_as_current(w, d) for w, d in zip(written, decoded, strict=True)]
    return written


def test_old_and_current_records_interleaved_all_decode(codec: Codec) -> None:
    """One stream holding, for every type, a record of each recorded version and a current one in
    between — as a log written across releases reads back: each becomes today's class, in order."""
    stream: list[tuple[bytes, type[Message], str]] = []
    for i, version in enumerate(VERSIONS):
        cls = BY_NAME[version.full_name]
        wire, written = write_old(version, seed=i * 1000)
        stream.append((wire, cls, written["envelope"]["event_id"]))
        current = codec.decode(wire)  # the same record, now written with the current schema
        env = dataclasses.replace(current.envelope, event_id=f"current-{i}")
        stream.append((codec.encode(Enveloped(envelope=env, message=current.message)), cls, env.event_id))
    ids = set()
    for wire, cls, event_id in stream:
        item = codec.decode(wire)
        assert type(item.message) is cls and item.envelope.event_id == event_id
        ids.add(int.from_bytes(wire[1:5], "big"))
    assert ids == set(writer_index(SCHEMAS_DIR)), "every version's id, the current ones among them"


def test_a_first_release_confirmation_keeps_the_order_as_placed(codec: Codec) -> None:
    """OrderConfirmed v1 had no lines and no total: folded today, the order keeps its placed prices."""
    (v1,) = [v for v in HISTORY[("order", "OrderConfirmed")] if v.number == 1]
    wire, _ = write_old(v1)
    confirmed = codec.decode(wire).message
    assert isinstance(confirmed, OrderConfirmed) and confirmed.lines == [] and confirmed.total == 0
    book = order_domain.new_state()
    placed = OrderPlaced(
        order_id=confirmed.order_id,
        member_id="m-1",
        channel="live",
        lines=[OrderLine(sku="mask", qty=2, unit_price=1990)],
        distributor_id=None,
        campaign_id=None,
        total=3980,
        placed_at=1,
    )
    order_domain.evolve(book, placed)
    order_domain.evolve(book, confirmed)
    order = book.orders[confirmed.order_id]
    assert (order.status, order.total, order.lines) == ("confirmed", 3980, [OrderLine(sku="mask", qty=2, unit_price=1990)])


def test_without_its_upcaster_an_incompatible_old_version_is_a_clear_decode_error() -> None:
    (v1,) = [v for v in HISTORY[("order", "OrderConfirmed")] if v.number == 1]
    wire, _ = write_old(v1)
    bare = Codec(MESSAGES, upcasters=[])
    with pytest.raises(DecodeError, match=r"OrderConfirmed.*cannot be read as the current OrderConfirmed.*/total.*Upcaster"):
        bare.decode(wire)
    with pytest.raises(DecodeError, match=r"OrderConfirmed\.v1"):  # the reason names where the writer schema is
        bare.decode(wire)


def test_a_writer_type_without_a_class_is_a_clear_decode_error() -> None:
    """A codec that does not read a type (a projection's codec) names the writer's type."""
    (v1,) = [v for v in HISTORY[("order", "OrderShipped")] if v.number == 1]
    wire, _ = write_old(v1)
    narrow = Codec([cls for cls in MESSAGES if cls.SERVICE == "inventory"])
    with pytest.raises(DecodeError, match=r"writer type flexchain\.order\.OrderShipped has no class"):
        narrow.decode(wire)


def test_renamed_events_are_named_in_the_past_tense_and_keep_their_old_records() -> None:
    assert {(cls.__name__, old) for cls, old in RENAMED} >= {  # formerly: issue 17 item 7
        ("GiftRuleRecovered", "GiftRuleHealthy"),  # formerly
        ("SupplierPenaltyIncurred", "SupplierPenaltyDue"),  # formerly
        ("StockBecameAvailable", "StockBackInStock"),  # formerly
    }
    for cls, old in RENAMED:
        assert HISTORY[(cls.SERVICE, old)], f"{old}: its released schema stays in the history"
        assert not schema_path(cls).with_name(f"{old}.avsc").exists(), f"{old}: no current schema under the old name"
        schema = load_json(schema_path(cls))
        assert schema["namespace"] == f"flexchain.{cls.SERVICE}" and schema["aliases"] == [old]  # relative: same namespace


@pytest.mark.parametrize(("cls", "old"), RENAMED, ids=[old for _, old in RENAMED])
def test_a_record_written_under_a_former_name_reads_as_the_renamed_class(codec: Codec, cls: type[Message], old: str) -> None:
    """A record of the old name, as its release wrote it (its schema and id, the old name in the
    envelope): today's codec reads it as the new class, the envelope naming the type read."""
    version = HISTORY[(cls.SERVICE, old)][-1]
    schema = version.schema()
    record = Values(7).of(schema, {})
    record["envelope"]["event_type"] = old
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, local_schema_id(schema, SCHEMAS_DIR)))
    schemaless_writer(buf, parse_schema(schema), record, strict=True)
    item = codec.decode(buf.getvalue())
    assert type(item.message) is cls
    assert item.envelope.event_type == cls.__name__
    assert {**dataclasses.asdict(item.envelope), "event_type": old} == record["envelope"]
    assert to_record(item.message) == {k: v for k, v in record.items() if k != "envelope"}
    # a codec without the renamed class's own upcaster would not read it: the rename is what reads it
    bare = Codec(MESSAGES, upcasters=[u for u in UPCASTERS if u.target is not cls])
    with pytest.raises(DecodeError, match=f"writer type flexchain\\.{cls.SERVICE}\\.{old} has no class"):
        bare.decode(buf.getvalue())


def test_an_id_in_no_schema_is_still_unknown(codec: Codec) -> None:
    wire, _ = write_old(HISTORY[("order", "OrderShipped")][0])
    known = set(writer_index(SCHEMAS_DIR))
    unknown = next(i for i in range(1, 10_000) if i not in known)
    with pytest.raises(DecodeError, match=f"unknown schema id {unknown}: not a current schema, not in the schema history"):
        codec.decode(wire[:1] + unknown.to_bytes(4, "big") + wire[5:])
