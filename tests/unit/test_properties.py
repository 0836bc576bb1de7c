"""Property-based tests of the pure tier: invariants that must hold for any sequence of commands.

(a) inventory alone: the live state equals the fold of its own log; stock never goes negative
    (R-INV-1); alerts alternate raised/cleared, one per crossing (R-INV-3).
(b) the order ⇄ inventory stock saga, routed synchronously in memory through the two pure policies:
    statuses follow R-ORD-2, each order is answered once, and stock is accounted for exactly (R-INV-2).
(c) the live order book equals the fold of the order log (and likewise for inventory).
Gift rules take part in (b) and (c): gift stock is held, shipped and returned like any line, a gift
never fails an order (R-ORD-5) and never costs more than the cap (R-ORD-4).
"""

from __future__ import annotations

import copy
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.inventory import domain as inventory_domain
from services.inventory import policy as inventory_policy
from services.inventory.messages import (
    CommitReservation,
    EndLiveStream,
    InventoryCommandRejected,
    LowStockAlertCleared,
    LowStockAlertRaised,
    ReceiveStock,
    RegisterSku,
    ReleaseReservation,
    ReservationRejected,
    ReserveStock,
    ReturnStock,
    ScheduleLiveStream,
    SetSafetyStock,
    SkuRegistered,
    StockBecameAvailable,
)
from services.order import domain as order_domain
from services.order import policy as order_policy
from services.order.messages import (
    CHANNELS,
    REFUND_REASONS,
    CancelOrder,
    ConfirmDelivery,
    DefineGiftRule,
    OrderCommandRejected,
    OrderConfirmed,
    OrderLine,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    PayOrder,
    PlaceOrder,
    RefundLine,
    RefundOrder,
    ShipOrder,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)
T0 = 1_767_225_600_000
MINUTE = 60_000
DAY = 24 * 60 * MINUTE

SKUS = ("s1", "s2", "s3")
WAREHOUSES = ("north", "south")

# --- (a) inventory ------------------------------------------------------------------------------

ORDER_IDS = ("o1", "o2", "o3", "o4")
STREAMS = ("live-1", "live-2")
sku_st = st.sampled_from(SKUS)
wh_st = st.sampled_from(WAREHOUSES)
order_st = st.sampled_from(ORDER_IDS)

inventory_command_st = st.one_of(
    st.builds(
        RegisterSku, sku=sku_st, name=st.just("item"), is_gift=st.booleans(), low_stock_floor=st.none() | st.integers(-1, 80)
    ),
    st.builds(ReceiveStock, sku=sku_st, warehouse=st.sampled_from((*WAREHOUSES, "")), qty=st.integers(-2, 60)),
    st.builds(ReserveStock, sku=sku_st, order_id=order_st, qty=st.integers(-1, 80), preferred_warehouse=st.none() | wh_st),
    st.builds(ReleaseReservation, sku=sku_st, order_id=order_st, reason=st.just("test"), qty=st.none() | st.integers(-1, 40)),
    st.builds(CommitReservation, sku=sku_st, order_id=order_st),
    st.builds(
        ReturnStock,
        sku=sku_st,
        order_id=order_st,
        qty=st.integers(-1, 20),
        grade=st.sampled_from("ABC"),
        warehouse=st.none() | wh_st,
    ),
    st.builds(SetSafetyStock, sku=sku_st, units=st.integers(-5, 120)),
    st.builds(ScheduleLiveStream, sku=sku_st, stream_id=st.sampled_from(STREAMS), expected_sales=st.integers(-1, 800)),
    st.builds(EndLiveStream, sku=sku_st, stream_id=st.sampled_from(STREAMS)),
)


def fold_inventory(log: list[Message]) -> inventory_domain.Inventory:
    state = inventory_domain.new_state()
    for e in log:
        inventory_domain.evolve(state, e)
    return state


def check_stock_never_negative(state: inventory_domain.Inventory) -> None:
    """R-INV-1: on hand, reserved and available are never negative, per warehouse and in total."""
    for item in state.skus.values():
        for name, wh in item.warehouses.items():
            assert wh.on_hand >= 0 and wh.reserved >= 0 and wh.clearance >= 0, (item.sku, name, wh)
            assert wh.available >= 0, (item.sku, name, wh)
            held = sum(r.get(name, 0) for r in item.reservations.values())
            assert held == wh.reserved, "the reservations book adds up to the warehouse's reserved units"
        assert item.on_hand >= 0 and item.reserved >= 0 and item.available >= 0
        assert all(q > 0 for r in item.reservations.values() for q in r.values())


def check_alerts_alternate(log: list[Message]) -> None:
    """R-INV-3: raised, cleared, raised … per sku; the n-th raise is crossing n; a clear names it."""
    for sku in SKUS:
        alerts = [e for e in log if isinstance(e, (LowStockAlertRaised, LowStockAlertCleared)) and e.sku == sku]
        for i, alert in enumerate(alerts):
            assert isinstance(alert, LowStockAlertRaised if i % 2 == 0 else LowStockAlertCleared), alerts
            assert alert.crossing == i // 2 + 1, alerts


@PROPERTY_SETTINGS
@given(st.lists(inventory_command_st, max_size=60))
def test_inventory_live_state_is_the_fold_of_its_log_and_stock_never_goes_negative(
    commands: list[Message],
) -> None:
    live = inventory_domain.new_state()
    log: list[Message] = []
    setup: list[Message] = [RegisterSku(sku="s1", name="mask"), RegisterSku(sku="s2", name="eye mask")]  # s3 only if drawn
    for i, cmd in enumerate([*setup, *commands]):
        before = copy.deepcopy(live)
        events = inventory_domain.decide(live, cmd, T0 + i * MINUTE)
        assert live == before, "decide never changes the state"
        for e in events:
            inventory_domain.evolve(live, e)
        log.extend(events)
        check_stock_never_negative(live)

        if not events or isinstance(events[0], (InventoryCommandRejected, ReservationRejected)):
            assert live == before, "a rejection changes nothing"
            continue
        if isinstance(events[0], SkuRegistered):
            continue
        item = live.skus[cmd.key]
        # R-INV-3: after any change the alert flag agrees with where available stands.
        if item.alert_active:
            assert item.available <= item.threshold()
        else:
            assert item.available >= item.threshold()
        # R-INV-6a: back in stock exactly when a sku that had stock goes from 0 to > 0 available.
        was = before.skus[cmd.key]
        back = [e for e in events if isinstance(e, StockBecameAvailable)]
        expected_back = was.available == 0 and item.available > 0 and was.ever_available
        assert len(back) == int(expected_back), (was, item, events)

    assert fold_inventory(log) == live
    check_alerts_alternate(log)


# --- (b) the stock saga, routed in memory ----------------------------------------------------------

GIFT_SKUS = ("g1", "g2")
ALL = list(CHANNELS)
GIFT_RULES = (  # R-ORD-3..5: a fallback that runs out too, a costly consumable often over the cap, a gift
    # sku that is often a main line of the same order (skipped)
    DefineGiftRule(
        rule_id="r-g1",
        tier="base",
        main_sku="s1",
        main_unit_cost=1000,
        gift_sku="g1",
        gift_unit_cost=50,
        gift_qty=1,
        fallback_sku="g2",
        fallback_unit_cost=40,
        consumable=False,
        converts_to=None,
        channels=ALL,
    ),
    DefineGiftRule(
        rule_id="r-cap",
        tier="base",
        main_sku="s2",
        main_unit_cost=2000,
        gift_sku="g2",
        gift_unit_cost=300,
        gift_qty=2,
        fallback_sku=None,
        fallback_unit_cost=0,
        consumable=True,
        converts_to=None,
        channels=ALL,
    ),
    DefineGiftRule(
        rule_id="r-dup",
        tier="base",
        main_sku="s3",
        main_unit_cost=0,
        gift_sku="s1",
        gift_unit_cost=10,
        gift_qty=1,
        fallback_sku=None,
        fallback_unit_cost=0,
        consumable=False,
        converts_to=None,
        channels=ALL,
    ),
)
SAGA_SKUS = (*SKUS, "s4")  # s4 is never registered: its lines are rejected by inventory
SAGA_ORDERS = tuple(f"ord-{i}" for i in range(8))
TERMINAL = frozenset({"rejected", "cancelled", "refunded"})
# R-ORD-2, as seen between two commands: the router answers every line before the next command,
# so "placed" never survives a step; a tick may cancel (hold expired) or complete (window closed).
NEXT_STATUS: dict[str | None, frozenset[str]] = {
    None: frozenset({"confirmed", "rejected"}),
    "confirmed": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"shipped", "cancelled", "refunded"}),
    "shipped": frozenset({"delivered", "refunded"}),
    "delivered": frozenset({"completed", "refunded"}),
    "completed": frozenset({"refunded"}),
    **{s: frozenset() for s in TERMINAL},
}
RESELLABLE = ("no_reason", "late")  # grade A; defect and damaged → grade B (clearance)


@dataclass
class Saga:
    """Both services' states and logs, and a router that feeds every event to both policies."""

    orders: order_domain.OrderBook = field(default_factory=order_domain.new_state)
    inventory: inventory_domain.Inventory = field(default_factory=inventory_domain.new_state)
    order_log: list[Message] = field(default_factory=list)
    inventory_log: list[Message] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    now: int = T0

    def send(self, first: Message) -> None:
        queue: deque[Message] = deque([first])
        while queue:
            msg = queue.popleft()
            if isinstance(msg, ClockTicked):
                events: list[Message] = [msg]
            elif msg.SERVICE == "order":
                events = order_domain.decide(self.orders, msg, self.now)
                for e in events:
                    order_domain.evolve(self.orders, e)
                self.order_log.extend(events)
            else:
                events = inventory_domain.decide(self.inventory, msg, self.now)
                for e in events:
                    inventory_domain.evolve(self.inventory, e)
                self.inventory_log.extend(events)
            for e in events:
                queue.extend(inventory_policy.react(e))
                queue.extend(order_policy.react(e))


Action = tuple[Any, ...]  # (kind, *arguments), resolved against the live state by command_for


def weighted(common: object, rare: object, odds: int = 6) -> st.SearchStrategy[object]:
    return st.sampled_from([common] * odds + [rare])


line_st = st.tuples(st.sampled_from((*SKUS, *SKUS, "s4")), st.integers(1, 12), st.integers(0, 5000))
distinct_lines_st = st.lists(line_st, min_size=1, max_size=3, unique_by=lambda line: line[0])
refund_line_st = st.tuples(st.integers(0, 2), st.integers(1, 4), st.sampled_from((*REFUND_REASONS, *REFUND_REASONS, "bogus")))
pick_st = st.integers(0, len(SAGA_ORDERS) - 1)  # an order that exists, when there is one
dt_st = st.sampled_from((0, 1, MINUTE, MINUTE, 5 * MINUTE, 29 * MINUTE, 30 * MINUTE, 31 * MINUTE, DAY, 7 * DAY, 8 * DAY))
action_st = st.one_of(
    st.tuples(st.just("place"), weighted(True, False), st.lists(line_st, min_size=1, max_size=3), weighted(True, False)),
    st.tuples(st.just("place"), st.just(True), distinct_lines_st, st.just(True)),
    st.tuples(st.just("pay"), pick_st, weighted(True, False)),
    st.tuples(st.just("advance"), pick_st),
    st.tuples(st.just("advance"), pick_st),
    st.tuples(st.just("advance"), pick_st),
    st.tuples(st.just("ship"), pick_st),
    st.tuples(st.just("deliver"), pick_st),
    st.tuples(st.just("cancel"), pick_st),
    st.tuples(st.just("refund"), pick_st, st.integers(0, 2), st.lists(refund_line_st, min_size=1, max_size=2)),
    st.tuples(st.just("tick"), dt_st),
    st.tuples(st.just("wait"), dt_st),
    st.tuples(st.just("receive"), st.sampled_from(SKUS), st.sampled_from(WAREHOUSES), st.integers(1, 40)),
)


def command_for(saga: Saga, action: Action) -> Message | None:
    """The command an action stands for, aimed at the orders that exist at that point."""
    kind, *args = action
    known = sorted(saga.orders.orders)
    if kind == "place":
        fresh, lines, good_channel = args
        unused = [oid for oid in SAGA_ORDERS if oid not in saga.orders.orders]
        oid = unused[0] if fresh and unused else SAGA_ORDERS[len(lines) % len(SAGA_ORDERS)]
        channel = CHANNELS[len(known) % len(CHANNELS)] if good_channel else "tv"
        return PlaceOrder(
            order_id=oid,
            member_id="m-1",
            channel=channel,
            lines=[OrderLine(sku=sku, qty=qty, unit_price=price) for sku, qty, price in lines],
        )
    if kind in ("tick", "wait"):
        saga.now += args[0]
        return ClockTicked(clock_id="clock", time=saga.now) if kind == "tick" else None
    if kind == "receive":
        sku, warehouse, qty = args
        saga.received[sku] += qty
        return ReceiveStock(sku=sku, warehouse=warehouse, qty=qty, reference="po")
    if kind == "refund":  # aim most refunds at orders that can take one
        refundable = [o for o in known if saga.orders.orders[o].status in ("paid", "shipped", "delivered", "completed")]
        known = refundable or known
    oid = known[args[0] % len(known)] if known else SAGA_ORDERS[args[0]]
    order = saga.orders.orders.get(oid)
    if kind == "advance":  # the next step of the happy path, so that long lives are common
        kind = {"confirmed": "pay", "paid": "ship", "shipped": "deliver"}.get(order.status if order else "", "")
        if not kind:
            saga.now += 8 * DAY if order and order.status == "delivered" else MINUTE
            return ClockTicked(clock_id="clock", time=saga.now)
        args = [args[0], True]
    if kind == "pay":
        total = order.total if order else 100
        return PayOrder(order_id=oid, amount=total if args[1] else total + 1, payment_ref=f"pay-{oid}")
    if kind == "ship":
        return ShipOrder(order_id=oid, tracking="SF1")
    if kind == "deliver":
        return ConfirmDelivery(order_id=oid)
    if kind == "cancel":
        return CancelOrder(order_id=oid, reason="changed my mind")
    rid, picks = args[1:]
    skus = order.skus if order else ["s1"]
    return RefundOrder(
        order_id=oid,
        refund_id=f"rf-{rid}",
        lines=[RefundLine(sku=skus[i % len(skus)], qty=qty, reason=why) for i, qty, why in picks],
    )


def expected_stock(saga: Saga) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """(reserved, on hand, clearance) per sku, as the order side says they must be (R-INV-2).

    Reserved — "lines of confirmed or paid orders", made precise by R-ORD-2a and R-INV-2: a confirmed
    order holds every line; a paid order holds every line less the units refunded before shipping
    (a refund of goods not yet shipped releases those units at once, so a paid order can hold less
    than it ordered, and a line refunded in full holds nothing); placed never survives a step (see
    NEXT_STATUS); shipped, delivered and completed orders committed their hold (it left on hand), and
    rejected, cancelled and refunded orders released it (a fully refunded order is "refunded" whether
    it shipped or not, and holds nothing either way).
    On hand: received - what shipped (the line less the units refunded before shipping) + returns
    of resellable goods (grade A). Clearance: returns for a defect or damage (grade B).
    Gifts (R-ORD-2a, R-ORD-5): a held gift counts in reserved (less what was taken back before
    shipping); the parcel's gifts (`OrderShipped.gifts`) leave on hand; gifts taken back after
    shipping come back graded by their main line's reason, unless consumable (written off).
    """
    reserved: Counter[str] = Counter()
    on_hand: Counter[str] = Counter(saga.received)
    clearance: Counter[str] = Counter()
    unshipped_refunds: Counter[tuple[str, str]] = Counter()
    for e in saga.order_log:
        if isinstance(e, OrderRefunded):
            back = [(r.sku, r.qty, r.reason, r.goods_returned) for r in e.lines]
            back += [(g.sku, g.qty, g.reason, g.goods_returned) for g in e.gifts if not g.written_off]
            for sku, qty, reason, returned in back:
                if not returned:
                    unshipped_refunds[(e.order_id, sku)] += qty
                elif reason in RESELLABLE:
                    on_hand[sku] += qty
                else:
                    clearance[sku] += qty
        elif isinstance(e, OrderShipped):
            for g in e.gifts:
                on_hand[g.sku] -= g.qty
    for order in saga.orders.orders.values():
        for line in order.lines:
            if order.status == "confirmed":
                reserved[line.sku] += line.qty
            elif order.status == "paid":
                reserved[line.sku] += line.qty - order.refunded_qty.get(line.sku, 0)
            if order.shipped:
                on_hand[line.sku] -= line.qty - unshipped_refunds[(order.order_id, line.sku)]
        if order.status in ("confirmed", "paid"):
            for g in order.gifts.values():
                if g.status == "reserved":
                    reserved[g.sku] += g.qty - g.taken_back
    return reserved, on_hand, clearance


def check_saga(saga: Saga, before: dict[str, str]) -> None:
    for oid, order in saga.orders.orders.items():
        assert order.status in NEXT_STATUS[before.get(oid)] | {before.get(oid)}, (before.get(oid), order.status)
        assert 0 <= order.refunded_amount <= order.paid, "refunds and cancel refunds never exceed the payment"
        for line in order.lines:
            assert 0 <= order.refunded_qty.get(line.sku, 0) <= line.qty, "R-ORD-2a: never more than paid"
    answered = Counter(e.order_id for e in saga.order_log if isinstance(e, (OrderConfirmed, OrderRejected)))
    assert all(n == 1 for n in answered.values()), answered
    rejected = [e for e in saga.inventory_log if isinstance(e, InventoryCommandRejected)]
    assert rejected == [], "every command the policies send is one inventory can carry out"
    check_stock_never_negative(saga.inventory)
    for order in saga.orders.orders.values():  # R-ORD-4: within 15 % of the main line's margin at its price
        for g in order.gifts.values():
            main = order.line(g.line.main_sku)
            if g.status == "reserved" and order.status != "rejected" and main is not None:
                assert g.qty * g.unit_cost * 100 <= 15 * main.qty * (main.unit_price - g.line.main_unit_cost), (order, g)
            assert g.status != "pending", "every gift is answered within the step"
    reserved, on_hand, clearance = expected_stock(saga)
    for sku in (*SKUS, *GIFT_SKUS):
        item = saga.inventory.skus[sku]
        assert item.reserved == reserved[sku], (sku, item.reserved, reserved[sku])
        assert item.on_hand == on_hand[sku], (sku, item.on_hand, on_hand[sku])
        assert sum(w.clearance for w in item.warehouses.values()) == clearance[sku]


def fold_orders(log: list[Message]) -> order_domain.OrderBook:
    book = order_domain.new_state()
    for e in log:
        order_domain.evolve(book, e)
    return book


@PROPERTY_SETTINGS
@given(st.lists(action_st, min_size=10, max_size=60))
def test_the_stock_saga_keeps_orders_and_stock_consistent(actions: list[Action]) -> None:
    saga = Saga()
    for sku in SKUS:
        saga.send(RegisterSku(sku=sku, name=sku))
    for sku in GIFT_SKUS:
        saga.send(RegisterSku(sku=sku, name=sku, is_gift=True))
    for rule in GIFT_RULES:
        saga.send(rule)
    stock = (("s1", "north", 60), ("s1", "south", 40), ("s2", "south", 80), ("s3", "north", 20))
    stock += (("g1", "north", 1), ("g2", "south", 1))  # scarce: fallbacks and omissions happen
    for sku, warehouse, qty in stock:
        saga.send(ReceiveStock(sku=sku, warehouse=warehouse, qty=qty))
        saga.received[sku] += qty
    for action in actions:
        before = {oid: o.status for oid, o in saga.orders.orders.items()}
        cmd = command_for(saga, action)
        if cmd is not None:
            saga.send(cmd)
        check_saga(saga, before)
    # (c) rebuilding from the logs gives the live states back (R-X-2: and decides nothing anew).
    assert fold_orders(saga.order_log) == saga.orders
    assert fold_inventory(saga.inventory_log) == saga.inventory
    check_alerts_alternate(saga.inventory_log)


@PROPERTY_SETTINGS
@given(st.lists(action_st, min_size=10, max_size=60))
def test_folding_the_order_log_from_scratch_equals_the_live_order_book(actions: list[Action]) -> None:
    """(c) after every step, not only at the end; refusals fold to nothing (R-ORD-2)."""
    saga = Saga()
    for sku in SKUS:
        saga.send(RegisterSku(sku=sku, name=sku))
        saga.send(ReceiveStock(sku=sku, warehouse="north", qty=40))
    for rule in GIFT_RULES:
        saga.send(rule)
    for action in actions:
        cmd = command_for(saga, action)
        if cmd is None:
            continue
        seen = len(saga.order_log)
        saga.send(cmd)
        assert fold_orders(saga.order_log) == saga.orders
        refusals = [e for e in saga.order_log[seen:] if isinstance(e, OrderCommandRejected)]
        assert all(e.reason for e in refusals)
    accepted = [e for e in saga.order_log if not isinstance(e, OrderCommandRejected)]
    assert fold_orders(accepted) == saga.orders
