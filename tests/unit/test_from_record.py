"""`flexchain.messages.from_record`: a record back into its dataclass, on the rebuild's hot path.

A slotted message is filled through its slots without calling ``__init__`` (keyword calls cost
decoding 10 %, see bench/fold.py); what ``__init__`` would have done must still hold: fields declared
in a base class are set, a ``__post_init__`` runs, the result equals and hashes like a constructed one,
and stays frozen."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from flexchain.messages import Envelope, from_record, to_record


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    sku: str
    price: Decimal


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Base:
    order_id: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Placed(Base):
    lines: list[Line]
    note: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Checked:
    qty: int

    def __post_init__(self) -> None:
        if self.qty < 0:
            raise ValueError("qty < 0")


def test_a_slotted_record_with_inherited_and_nested_fields_comes_back_equal() -> None:
    placed = Placed(order_id="o-1", lines=[Line(sku="a", price=Decimal("9.90"))], note=None)
    back = from_record(Placed, to_record(placed))
    assert back == placed and hash(back.order_id) == hash("o-1")
    assert back.lines[0].price == Decimal("9.90") and isinstance(back.lines[0], Line)
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.order_id = "o-2"  # type: ignore[misc]


def test_a_post_init_still_runs() -> None:
    assert from_record(Checked, {"qty": 2}) == Checked(qty=2)
    with pytest.raises(ValueError, match="qty < 0"):
        from_record(Checked, {"qty": -1})


def test_an_envelope_comes_back_equal_and_hashable() -> None:
    env = Envelope(
        event_id="e",
        event_type="T",
        aggregate_id="a",
        aggregate_version=3,
        business_time=5,
        correlation_id="c",
        causation_id=None,
        producer="p",
    )
    back = from_record(Envelope, to_record(env))
    assert back == env and hash(back) == hash(env)


def test_a_missing_field_is_an_error_not_a_half_built_message() -> None:
    with pytest.raises(KeyError):
        from_record(Placed, {"order_id": "o-1", "note": None})
