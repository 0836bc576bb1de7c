"""Snapshots are data (issue 12, item 6): every service's partition survives encode → decode whole.

For each of the five services, random command histories (the generators of the services' own
property tests) produce an event log. Its first part is folded into a `PartitionState` (the kernel's
`fold_event`: state, dedup memory, versions, newest time, next offset), which is encoded and decoded;
the copy must equal the original — and must stay equal when the rest of the log is folded into both
(a state whose parts shared a mutable object would drift apart here). Then the codec's own rules:
what it refuses to build, what it refuses to read, and that a pickle is never executed.
"""

from __future__ import annotations

import os
import pickle
import random
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexchain import statecodec
from flexchain.fold import Applied, PartitionState, fold_event
from flexchain.messages import Envelope, Enveloped, Message
from flexchain.runtime import canonical
from services.commission import domain as commission_domain
from services.commission.state import CommissionState
from services.inventory import domain as inventory_domain
from services.inventory.domain import Inventory
from services.loyalty import domain as loyalty_domain
from services.loyalty.state import Loyalty
from services.order import domain as order_domain
from services.order.domain import OrderBook
from services.presale import domain as presale_domain
from services.presale.state import PresaleBook
from tests.unit.commission import test_properties as commission_props
from tests.unit.inventory import test_inventory_properties as inventory_props
from tests.unit.loyalty import test_loyalty_properties as loyalty_props
from tests.unit.test_properties import GIFT_RULES, GIFT_SKUS, SKUS, Saga, action_st, command_for

sys.path.insert(0, str(Path(__file__).parent / "presale"))  # as pytest does for the presale tests
from tests.unit.presale import test_presale_properties as presale_props

ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_767_225_600_000
HORIZON = 3_600_000


def envelopes(log: list[Message]) -> list[Enveloped]:
    """The log as a processor writes it: versions per aggregate, one cause per two events,
    business time moving on."""
    versions: dict[str, int] = {}
    out = []
    for i, e in enumerate(log):
        key = e.key
        versions[key] = versions.get(key, 0) + 1
        env = Envelope(
            event_id=f"e{i}",
            event_type=type(e).__name__,
            aggregate_id=key,
            aggregate_version=versions[key],
            business_time=T0 + i * 60_000,
            correlation_id=key,
            causation_id=f"c{i // 2}",
            producer="test",
        )
        out.append(Enveloped(envelope=env, message=e))
    return out


def check_round_trip(log: list[Message], new_state: Callable[[], Any], evolve: Callable[[Any, Any], Any], cut: float) -> None:
    items = envelopes(log)
    split = int(len(items) * cut)
    ps = PartitionState(new_state())
    for offset, item in enumerate(items[:split]):
        fold_event(evolve, ps, item, f"digest-{offset}", item.envelope.business_time, HORIZON)
        ps.next_offset = offset + 1
    state_type = type(ps.state)
    blob = statecodec.encode_partition(ps, state_type)
    copy = statecodec.decode_partition(blob, state_type)
    ps.since_snapshot = 0
    assert copy == ps
    assert canonical(copy.state) == canonical(ps.state)
    assert list(copy.seen) == list(ps.seen), "the dedup memory keeps its order (oldest first)"
    for offset, item in enumerate(items[split:], start=split):
        for p in (ps, copy):
            fold_event(evolve, p, item, f"digest-{offset}", item.envelope.business_time, HORIZON)
            p.next_offset = offset + 1
    assert copy == ps, "folding on from the decoded snapshot gives what folding on from the live one gives"
    assert canonical(copy.state) == canonical(ps.state)


cut_st = st.floats(0.0, 1.0)


@ROUND_TRIP
@given(st.lists(action_st, min_size=10, max_size=50), cut_st)
def test_order_and_inventory_partitions_round_trip(actions: list[Any], cut: float) -> None:
    saga = Saga()
    for sku in SKUS:
        saga.send(inventory_props.RegisterSku(sku=sku, name=sku))
        saga.send(inventory_props.ReceiveStock(sku=sku, warehouse="north", qty=40))
    for sku in GIFT_SKUS:
        saga.send(inventory_props.RegisterSku(sku=sku, name=sku, is_gift=True))
        saga.send(inventory_props.ReceiveStock(sku=sku, warehouse="south", qty=1))
    for rule in GIFT_RULES:
        saga.send(rule)
    for action in actions:
        cmd = command_for(saga, action)
        if cmd is not None:
            saga.send(cmd)
    assert any(o.history for o in saga.orders.orders.values()) or not saga.orders.orders
    check_round_trip(saga.order_log, order_domain.new_state, order_domain.evolve, cut)
    check_round_trip(saga.inventory_log, inventory_domain.new_state, inventory_domain.evolve, cut)


@ROUND_TRIP
@given(st.lists(inventory_props.step_st, min_size=10, max_size=60), cut_st)
def test_inventory_partitions_with_policies_signals_and_presale_links_round_trip(steps: list[Any], cut: float) -> None:
    live = inventory_domain.new_state()
    log: list[Message] = []
    now = inventory_props.T0 - 40 * inventory_props.DAY
    setup = [
        inventory_props.RegisterSku(sku="s1", name="mask"),
        inventory_props.RegisterSku(sku="s2", name="serum", is_gift=False, low_stock_floor=5),
        inventory_props.RegisterSku(sku="g1", name="trial", is_gift=True, low_stock_floor=0),
    ]
    for commands, hours in [(setup, 0), *steps]:
        now += hours * inventory_props.HOUR
        for cmd in commands:
            command = cmd if cmd is not None else inventory_props.CheckStockTimers(time=now)
            events = inventory_domain.decide(live, command, now)
            for e in events:
                inventory_domain.evolve(live, e)
            log.extend(events)
    check_round_trip(log, inventory_domain.new_state, inventory_domain.evolve, cut)


@ROUND_TRIP
@given(st.sampled_from((2, 3)), commission_props.history_st, st.randoms(use_true_random=False), cut_st)
def test_commission_partitions_round_trip(levels: int, ops: list[Any], rnd: random.Random, cut: float) -> None:
    w = commission_props.World(levels, rnd)
    for op in ops:
        w.apply(op)
    w.settle()
    for part in w.h.parts:
        check_round_trip([e for e, _ in part.log], commission_domain.new_state, commission_domain.evolve, cut)


@ROUND_TRIP
@given(loyalty_props.history_st, cut_st)
def test_loyalty_partitions_round_trip(history: list[tuple[int, object]], cut: float) -> None:
    _, log = loyalty_props.play(history)
    check_round_trip(log, loyalty_domain.new_state, loyalty_domain.evolve, cut)


@ROUND_TRIP
@given(presale_props.history_st, cut_st)
def test_presale_partitions_round_trip(h: Any, cut: float) -> None:
    _, log, _ = presale_props.run(h)
    check_round_trip(log, presale_domain.new_state, presale_domain.evolve, cut)


def test_the_states_configs_travel_too() -> None:
    """The configs `new_state(...)` puts into a state (order, loyalty, commission plan) are state."""
    for new_state in (
        lambda: order_domain.new_state(order_domain.OrderConfig(gift_cost_cap=Decimal("0.125"))),
        lambda: loyalty_domain.new_state(loyalty_domain.LoyaltyConfig(points_per_cny=3, behaviour_points={"live": 7})),
        commission_domain.new_state,
    ):
        ps = PartitionState(new_state(), {"c": Applied(5, "d")}, {"a": 3}, 7, 9)
        assert statecodec.decode_partition(statecodec.encode_partition(ps, type(ps.state)), type(ps.state)) == ps


def test_a_decoded_dedup_memory_forgets_in_the_order_it_remembered() -> None:
    """The dedup memory forgets oldest first through a deque of its ids (forgetting from a plain
    dict's front cost O(deleted slots) an event, bench/dedup.py); a snapshot writes the map in that
    order, and a decoded one forgets exactly what the live one forgets — also an id remembered twice
    (a command with several events), which keeps its first place."""
    live = PartitionState(None)
    for i, at in enumerate([5, 3, 9, 4, 12]):  # origins out of order, as commands arrive
        live.remember(f"c{i}", Applied(at, ""), horizon_ms=100)
    live.remember("c1", Applied(3, ""), horizon_ms=100)  # c1's second event
    back = statecodec.decode_partition(statecodec.encode_partition(live, type(None)), type(None))
    assert list(back.seen) == list(live.seen) == list(back.order) == list(live.order) == ["c0", "c1", "c2", "c3", "c4"]
    for ps in (live, back):
        ps.remember("c5", Applied(108, ""), horizon_ms=100)  # the limit is 8: c0 (5) and c1 (3) go; c2 (9) stops it
    assert list(back.seen) == list(live.seen) == ["c2", "c3", "c4", "c5"]  # c3 (4) stays behind c2, as before
    for ps in (live, back):
        ps.remember("c6", Applied(120, ""), horizon_ms=100)  # the limit is 20: all but c5 and c6 go
        assert list(ps.seen) == list(ps.order) == ["c5", "c6"]


# --- the codec's rules -------------------------------------------------------------------------


@dataclass
class Unsupported:
    when: float


@dataclass
class Nested:
    inner: Unsupported


@dataclass
class Doc:
    amounts: dict[str, Decimal] = field(default_factory=dict)
    counts: array[int] = field(default_factory=lambda: array("q"))
    tags: set[str] = field(default_factory=set)
    pair: tuple[int, str] | None = None


@pytest.mark.parametrize(
    ("tp", "names"),
    [(Unsupported, "Unsupported.when"), (Nested, "Unsupported.when"), (dict[tuple[int, int], int], "dict keys"), (Any, "Any")],
)
def test_an_unsupported_type_is_refused_naming_the_field(tp: Any, names: str) -> None:
    with pytest.raises(TypeError, match=names.replace(".", r"\.")):
        statecodec.dumps(None, tp)


def test_values_are_exact() -> None:
    doc = Doc({"a": Decimal("0.1000"), "b": Decimal("-0E-7"), "c": Decimal("12345678901234567890.123456789")})
    doc.counts.extend([-(2**63), 2**63 - 1, 0])
    doc.tags.update({"x", "y"})
    doc.pair = (1, "one")
    back = statecodec.loads(statecodec.dumps(doc, Doc), Doc)
    assert back == doc
    assert [str(v) for v in back.amounts.values()] == ["0.1000", "-0E-7", "12345678901234567890.123456789"]
    assert back.counts.typecode == "q"


def test_an_array_of_another_type_code_than_the_hint_allows_is_refused() -> None:
    """The type code in the blob is data checked against the hint, not trusted."""

    @dataclass
    class Floats:
        values: array[float]

    blob = statecodec.dumps(Floats(array("d", [1.5])), Floats)
    assert statecodec.loads(blob, Floats) == Floats(array("d", [1.5]))
    with pytest.raises(TypeError):
        statecodec.dumps(Doc(counts=array("d", [1.0])), Doc)  # type: ignore[arg-type]


@dataclass
class Indexed:
    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(init=False, default_factory=dict)  # derived from `names`

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in enumerate(self.names)}


def test_a_derived_field_is_not_written_and_is_built_again_on_decoding() -> None:
    doc = Indexed(["alpha-name", "beta-name"])
    blob = statecodec.dumps(doc, Indexed)
    assert blob.count(b"alpha-name") == 1  # once, in `names`: the index is not in the blob
    back = statecodec.loads(blob, Indexed)
    assert back == doc and back.index == {"alpha-name": 0, "beta-name": 1}

    @dataclass
    class Underived:
        names: list[str]
        index: dict[str, int] = field(init=False, default_factory=dict)

    with pytest.raises(TypeError, match="__post_init__"):
        statecodec.dumps(Underived([]), Underived)


def test_a_loyalty_state_keeps_one_string_per_member() -> None:
    """The member index's keys are the strings of the id list, after a snapshot too (a million
    members: ≈ 60 MB less than two copies of every id)."""
    st = loyalty_domain.new_state()
    for i in range(50):
        st.add_member(f"member-{i:04d}", 3, None)
    back = statecodec.loads(statecodec.dumps(st, Loyalty), Loyalty)
    assert back.rows == st.rows and len(back.ids) == 50
    assert all(key is back.ids[row] for key, row in back.rows.items())


def test_a_blob_for_another_type_is_foreign_and_garbage_does_not_decode() -> None:
    blob = statecodec.dumps(Doc(), Doc)
    with pytest.raises(statecodec.ForeignFormatError):
        statecodec.loads(blob, Inventory)
    with pytest.raises(statecodec.StateDecodeError):
        statecodec.loads(blob[: len(blob) // 2], Doc)
    with pytest.raises(statecodec.StateDecodeError):
        statecodec.loads(b"\x00garbage", Doc)
    # the right header, a wrong body: still refused, never half-built
    header = statecodec._ENCODER.encode((statecodec.LAYOUT, statecodec.fingerprint(Doc), {"amounts": {"a": 1.5}}))
    with pytest.raises(statecodec.StateDecodeError):
        statecodec.loads(header, Doc)


def test_a_message_of_a_tag_no_class_has_is_refused() -> None:
    ob = OrderBook()
    blob = statecodec.dumps(ob, OrderBook)
    assert statecodec.loads(blob, OrderBook) == ob
    poly = statecodec._poly(Message)
    with pytest.raises(statecodec.StateDecodeError, match="unknown Message tag"):
        poly.dec(("os.system:000000000000", statecodec.msgspec.Raw(b"\x90")))


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {MARKER}",))


MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"flexchain-pickle-ran-{os.getpid()}"


def test_a_pickle_is_never_executed() -> None:
    evil = pickle.dumps(Boom())
    for tp in (Inventory, OrderBook, Loyalty, CommissionState, PresaleBook):
        with pytest.raises(statecodec.StateDecodeError):
            statecodec.loads(evil, tp)
        with pytest.raises(statecodec.StateDecodeError):
            statecodec.decode_partition(evil, tp)
    assert not MARKER.exists()
