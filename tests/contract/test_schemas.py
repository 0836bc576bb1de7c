"""Contract: one published definition per message (STYLE 3).

Every message class has its ``schemas/<service>/<Name>.avsc``, equal to what the Python model implies
(so the model cannot drift from the published schema), fastavro accepts it, every message round-trips
through the wire format, and malformed records fail as ``DecodeError`` (the DLQ path), never as a crash.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Union

import pytest
from fastavro import parse_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.catalog import all_messages, available_services
from flexchain.messages import Envelope, Enveloped, Message
from flexchain.schemas import (
    SCHEMAS_DIR,
    envelope_schema,
    expanded,
    load_json,
    local_schema_id,
    schema_for,
    schema_path,
)
from flexchain.serde import MAGIC, Codec, DecodeError
from services.order.messages import OrderLine, OrderPlaced

MESSAGES = all_messages()
ENVELOPE_PATH = SCHEMAS_DIR / "common" / "Envelope.avsc"
LONG = st.integers(-(2**63), 2**63 - 1)  # Avro long


def ids(cls: type[Message]) -> str:
    return f"{cls.SERVICE}.{cls.__name__}"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(MESSAGES)


# --- the files ------------------------------------------------------------------------------------


def test_the_catalog_lists_each_message_once_and_every_service_has_messages() -> None:
    names = [(cls.SERVICE, cls.__name__) for cls in MESSAGES]
    assert len(names) == len(set(names))
    assert {cls.SERVICE for cls in MESSAGES} == {"clock", *available_services()}
    assert all(dataclasses.is_dataclass(cls) for cls in MESSAGES)
    assert all(cls.KEY == "" or cls.KEY in {f.name for f in dataclasses.fields(cls)} for cls in MESSAGES)


def test_the_envelope_schema_file_matches_the_envelope_model() -> None:
    assert load_json(ENVELOPE_PATH) == envelope_schema()
    parse_schema(load_json(ENVELOPE_PATH))


@pytest.mark.parametrize("cls", MESSAGES, ids=ids)
def test_each_message_has_its_avsc_equal_to_the_model(cls: type[Message]) -> None:
    path = schema_path(cls)
    assert path.is_file(), f"missing {path.relative_to(SCHEMAS_DIR.parent)}: run `flexchain schemas write`"
    assert load_json(path) == schema_for(cls), f"{path.name} drifted from {cls.__module__}.{cls.__name__}"


@pytest.mark.parametrize("cls", MESSAGES, ids=ids)
def test_fastavro_parses_each_schema_with_the_envelope_inlined(cls: type[Message]) -> None:
    schema = load_json(schema_path(cls))
    parsed = expanded(schema)
    assert parsed["name"] == cls.full_name()
    assert [f["name"] for f in parsed["fields"]] == ["envelope", *(f.name for f in dataclasses.fields(cls))]
    assert local_schema_id(schema) > 0


def test_no_orphan_avsc_without_a_message_class() -> None:
    expected = {schema_path(cls) for cls in MESSAGES} | {ENVELOPE_PATH}
    on_disk = {p for p in SCHEMAS_DIR.rglob("*.avsc") if p.relative_to(SCHEMAS_DIR).parts[0] != "history"}
    orphans = sorted(str(p.relative_to(SCHEMAS_DIR)) for p in on_disk - expected)
    assert orphans == [], f"schemas without a class: {orphans}"
    assert all(p.parent.name == p.parent.name.lower() for p in on_disk), "schemas/<service>/ folders"


def test_every_schema_has_its_own_id(codec: Codec) -> None:
    assert len({codec.schema_id(cls) for cls in MESSAGES}) == len(MESSAGES)
    assert all(codec.knows(cls) for cls in MESSAGES)


# --- round trip ----------------------------------------------------------------------------------


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values of an annotated field type, within what its Avro type can hold."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return st.none() | strategy_for(inner)
    if origin is list:
        return st.lists(strategy_for(typing.get_args(tp)[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=8), strategy_for(typing.get_args(tp)[1]), max_size=3)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return LONG
    if tp is str:
        return st.text(max_size=20)
    if tp is Decimal:
        return st.decimals(allow_nan=False, allow_infinity=False, places=4)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.builds(tp, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(tp)})
    raise TypeError(f"no strategy for {tp!r}")


@pytest.mark.parametrize("cls", MESSAGES, ids=ids)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_each_message_round_trips_through_the_codec(codec: Codec, cls: type[Message], data: st.DataObject) -> None:
    item = Enveloped(envelope=data.draw(strategy_for(Envelope)), message=data.draw(strategy_for(cls)))
    wire = codec.encode(item)
    assert wire[0] == MAGIC
    assert int.from_bytes(wire[1:5], "big") == codec.schema_id(cls)
    assert codec.decode(wire) == item


def sample() -> Enveloped:
    env = Envelope(
        event_id="evt-1",
        event_type="OrderPlaced",
        aggregate_id="ord-1",
        aggregate_version=1,
        business_time=1_767_225_600_000,
        correlation_id="corr-1",
        causation_id=None,
        producer="order",
    )
    msg = OrderPlaced(
        order_id="ord-1",
        member_id="m-1",
        channel="live",
        lines=[OrderLine(sku="mask-01", qty=2, unit_price=1990)],
        distributor_id=None,
        campaign_id="camp-1",
        total=3980,
        placed_at=1,
    )
    return Enveloped(envelope=env, message=msg)


def test_a_hand_built_order_placed_round_trips(codec: Codec) -> None:
    assert codec.decode(codec.encode(sample())) == sample()


# --- malformed records -------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, b"", b"\x00", b"\x00\x00\x00\x00"], ids=["none", "empty", "1b", "4b"])
def test_decode_rejects_records_shorter_than_the_header(codec: Codec, data: bytes | None) -> None:
    with pytest.raises(DecodeError, match="shorter than 5 bytes"):
        codec.decode(data)


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=64))
def test_decode_fails_on_garbage_only_with_a_decode_error(codec: Codec, garbage: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(garbage)
    assert info.value.reason


def test_decode_rejects_a_wrong_magic_byte(codec: Codec) -> None:
    wire = codec.encode(sample())
    with pytest.raises(DecodeError, match="magic byte 1"):
        codec.decode(b"\x01" + wire[1:])


def test_decode_rejects_an_unknown_schema_id(codec: Codec) -> None:
    known = {codec.schema_id(cls) for cls in MESSAGES}
    unknown = next(i for i in range(1, 1000) if i not in known)
    wire = codec.encode(sample())
    with pytest.raises(DecodeError, match=f"unknown schema id {unknown}"):
        codec.decode(wire[:1] + unknown.to_bytes(4, "big") + wire[5:])


def test_decode_rejects_every_truncation_of_the_body(codec: Codec) -> None:
    wire = codec.encode(sample())
    for cut in range(5, len(wire)):
        with pytest.raises(DecodeError, match="OrderPlaced"):
            codec.decode(wire[:cut])


def test_encode_refuses_a_message_that_does_not_fit_its_schema(codec: Codec) -> None:
    bad = dataclasses.replace(sample().message, total="4480")
    with pytest.raises((ValueError, TypeError)):
        codec.encode(Enveloped(envelope=sample().envelope, message=bad))


def test_a_codec_reads_schemas_from_the_folder_it_is_given(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Codec(MESSAGES, root=tmp_path)


def _records_of(tp: Any) -> list[type]:
    """The dataclasses a field type holds (nested records of a message), at any depth."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [tp]
    return [r for arg in typing.get_args(tp) for r in _records_of(arg)]


def test_every_message_and_record_in_it_is_built_by_keyword() -> None:
    """kw_only (issue 17): a message with a dozen fields cannot be built with two of them swapped."""
    seen: set[type] = {Envelope, Enveloped}
    todo: list[type] = [*MESSAGES, Envelope, Enveloped]
    while todo:
        cls = todo.pop()
        fields = dataclasses.fields(cls)
        assert all(f.kw_only for f in fields), f"{cls.__qualname__}: @dataclass(..., kw_only=True)"
        hints = typing.get_type_hints(cls)
        for f in fields:
            for nested in _records_of(hints[f.name]):
                if nested not in seen:
                    seen.add(nested)
                    todo.append(nested)
    build: Any = OrderLine  # through a variable: refused when it runs, not only by a type checker
    with pytest.raises(TypeError, match="positional"):
        build("mask", 1, 1990)
