"""Properties of the inventory decider over random command sequences on business time:

* R-INV-2 — per sku per warehouse, on hand = received − shipped + returned (grade A) and clearance =
  returned (grade B), at every point; R-INV-1 — available is never negative and the reservations
  book adds up to the reserved units; a gift's hold is always one of the order's reservations;
* R-X-2 — every derived event is emitted once per cause: one replenishment per crossing, one
  detection per slow-mover episode, a safety stock only when its value changes, one review per day;
* the live state is the fold of its log, and decide never changes the state.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.messages import (
    CheckStockTimers,
    CommitReservation,
    ConfigureStockPolicy,
    DailyStockReviewed,
    InventoryCommandRejected,
    LinkPresaleCampaign,
    ReceiveStock,
    RecordGiftWriteOff,
    RecordPresaleClose,
    RegisterSku,
    ReleaseReservation,
    ReplenishmentSuggested,
    ReservationRejected,
    ReserveStock,
    ReturnStock,
    SafetyStockSet,
    ScheduleLiveStream,
    SetSafetyStock,
    SlowMovingStockDetected,
)
from services.inventory.state import Inventory
from tests.unit.inventory.builders import DAY, HOUR, T0

SKUS = ("s1", "s2", "g1")
WAREHOUSES = ("north", "south", "west")
ORDERS = ("o1", "o2", "o3", "o4", "o5")
RULES = ("r1", "r2")

sku_st = st.sampled_from(SKUS)
wh_st = st.sampled_from(WAREHOUSES)
order_st = st.sampled_from(ORDERS)
rule_st = st.none() | st.sampled_from(RULES)
decimal_st = st.sampled_from([Decimal("0"), Decimal("0.5"), Decimal("1"), Decimal("1.5"), Decimal("-1")])

valid_receipt_st = st.builds(ReceiveStock, sku=sku_st, warehouse=wh_st, qty=st.integers(1, 60))
edge_receipt_st = st.builds(ReceiveStock, sku=sku_st, warehouse=st.sampled_from((*WAREHOUSES, "")), qty=st.integers(-2, 60))
reserve_st = st.builds(
    ReserveStock,
    sku=sku_st,
    order_id=order_st,
    qty=st.integers(-1, 40),
    preferred_warehouse=st.none() | wh_st,
    gift_rule_id=rule_st,
)
release_st = st.builds(
    ReleaseReservation,
    sku=sku_st,
    order_id=order_st,
    reason=st.just("test"),
    qty=st.none() | st.integers(-1, 30),
    gift_rule_id=rule_st,
)
return_st = st.builds(
    ReturnStock, sku=sku_st, order_id=order_st, qty=st.integers(-1, 20), grade=st.sampled_from("ABC"), warehouse=st.none() | wh_st
)
policy_st = st.builds(
    ConfigureStockPolicy,
    sku=sku_st,
    lead_time_days=st.integers(-1, 30),
    cover_factor=decimal_st,
    gift_tier=st.none() | st.integers(0, 4),
    forecast_daily_units=st.none() | decimal_st,
    monthly_visitors=st.integers(0, 10_000),
    conversion_rate=st.sampled_from([Decimal("0"), Decimal("0.01"), Decimal("2")]),
    velocity_window_days=st.none() | st.integers(0, 40),
    slow_mover_window_days=st.none() | st.integers(1, 40),
    sell_through_floor=st.none() | decimal_st,
)
rare_st = st.one_of(
    edge_receipt_st,
    st.builds(
        RecordGiftWriteOff,
        sku=sku_st,
        order_id=order_st,
        rule_id=st.sampled_from(RULES),
        qty=st.integers(-1, 5),
        reason=st.just("defect"),
    ),
    st.builds(SetSafetyStock, sku=sku_st, units=st.integers(-5, 120)),
    st.builds(ScheduleLiveStream, sku=sku_st, stream_id=st.just("live-1"), expected_sales=st.integers(0, 600)),
    policy_st,
    st.builds(LinkPresaleCampaign, sku=sku_st, campaign_id=st.sampled_from(("c1", "c2"))),
    st.builds(
        RecordPresaleClose,
        campaign_id=st.sampled_from(("c1", "c2")),
        outcome=st.sampled_from(("succeeded", "failed")),
        pledged_units=st.integers(0, 900),
        closed_at=st.just(0),
    ),
)


@st.composite
def sale_st(draw: st.DrawFn) -> list[Message]:
    """An order reserved and shipped (the sales the velocity and the sell-through count)."""
    sku, order = draw(sku_st), draw(order_st)
    return [
        ReserveStock(sku=sku, order_id=order, qty=draw(st.integers(1, 8)), preferred_warehouse=None, gift_rule_id=draw(rule_st)),
        CommitReservation(sku=sku, order_id=order),
    ]


# a step: commands, after moving business time on by some hours; None is a clock tick
step_st = st.tuples(
    st.one_of(
        valid_receipt_st.map(lambda c: [c]),
        reserve_st.map(lambda c: [c]),
        sale_st(),
        sale_st(),
        st.builds(CommitReservation, sku=sku_st, order_id=order_st).map(lambda c: [c]),
        release_st.map(lambda c: [c]),
        return_st.map(lambda c: [c]),
        st.just([None]),
        st.just([None]),
        rare_st.map(lambda c: [c]),
    ),
    st.integers(0, 40),
)


def check_books(state: Inventory) -> None:
    for item in state.skus.values():
        for name, wh in item.warehouses.items():
            assert wh.on_hand == wh.received - wh.shipped + wh.returned_a, (item.sku, name, wh)  # R-INV-2
            assert wh.clearance == wh.returned_b, (item.sku, name, wh)
            assert wh.on_hand >= 0 and wh.reserved >= 0 and wh.available >= 0, (item.sku, name, wh)  # R-INV-1
            assert sum(r.get(name, 0) for r in item.reservations.values()) == wh.reserved
        assert item.available >= 0
        assert set(item.gift_holds) <= set(item.reservations), "a gift's hold is one of the order's reservations"
        if item.alert_active:  # R-INV-3: the flag agrees with where available stands after any change
            assert item.available <= item.threshold()


def check_once(log: list[Message]) -> None:
    """R-X-2: one derived event per cause."""
    replenish = Counter((e.sku, e.crossing) for e in log if isinstance(e, ReplenishmentSuggested))
    assert all(n == 1 for n in replenish.values()), replenish
    episodes = Counter((e.sku, e.episode) for e in log if isinstance(e, SlowMovingStockDetected))
    assert all(n == 1 for n in episodes.values()), episodes
    days = [e.day for e in log if isinstance(e, DailyStockReviewed)]
    assert days == sorted(set(days)), "one review per business day, in order"
    last: dict[str, int] = {}
    for e in log:
        if isinstance(e, SafetyStockSet) and e.basis is not None:
            assert last.get(e.sku) != e.units, "a computed safety stock is an event only when it changes"
        if isinstance(e, SafetyStockSet):
            last[e.sku] = e.units


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, min_size=10, max_size=80))
def test_r_inv_2_on_hand_is_received_minus_shipped_plus_returned_a_at_every_point(
    steps: list[tuple[list[Message | None], int]],
) -> None:
    live = Scenario(INVENTORY)
    now = T0 - 40 * DAY  # listed long enough ago to be a slow mover
    setup: list[Message | None] = [
        RegisterSku(sku="s1", name="mask"),
        RegisterSku(sku="s2", name="serum", is_gift=False, low_stock_floor=5),
        RegisterSku(sku="g1", name="trial", is_gift=True, low_stock_floor=0),
    ]
    for commands, hours in [(setup, 0), *steps]:
        now += hours * HOUR
        for cmd in commands:
            command = cmd if cmd is not None else CheckStockTimers(time=now)
            events = live.when(command, now).events  # decide never changes the state: `when` checks it
            check_books(live.state)
            if events and isinstance(events[0], InventoryCommandRejected | ReservationRejected):
                live.unchanged("a rejection changes nothing")
    check_once(live.log)
    assert live.rebuilt() == live.state
    if live.state.reviewed_day is not None and now // DAY == live.state.reviewed_day:
        assert live.decide(CheckStockTimers(time=now), now) == [], "a tick of a reviewed day changes nothing"
