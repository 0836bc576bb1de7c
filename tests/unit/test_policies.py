"""The stock saga's two pure policies (STYLE 2): what each event asks of the other service.

Inventory's policy turns order events into stock commands (R-INV-2, R-X-3); order's policy turns
inventory's answers and clock ticks into order commands (R-ORD-2).
"""

from __future__ import annotations

import pytest

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.inventory import policy as inventory_policy
from services.inventory.messages import (
    Allocation,
    CommitReservation,
    LowStockAlertRaised,
    ReleaseReservation,
    ReservationRejected,
    ReserveStock,
    ReturnStock,
    StockReceived,
    StockReserved,
)
from services.order import policy as order_policy
from services.order.messages import (
    CheckOrderTimers,
    OrderCancelled,
    OrderCommandRejected,
    OrderCompleted,
    OrderConfirmed,
    OrderDelivered,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    RecordLineReservation,
    RefundedLine,
)

OID = "ord-1"
MASK, EYE, SERUM = "mask-01", "eye-01", "serum-01"


# --- inventory policy: order events → stock commands ----------------------------------------------


def test_r_inv_2_an_order_placed_reserves_every_line() -> None:
    lines = [
        OrderLine(sku=MASK, qty=2, unit_price=1990),
        OrderLine(sku=EYE, qty=1, unit_price=500),
        OrderLine(sku=SERUM, qty=3, unit_price=0),
    ]
    event = OrderPlaced(
        order_id=OID,
        member_id="m-1",
        channel="live",
        lines=lines,
        distributor_id="d-1",
        campaign_id=None,
        total=4480,
        placed_at=0,
    )
    assert inventory_policy.react(event) == [
        ReserveStock(sku=MASK, order_id=OID, qty=2),
        ReserveStock(sku=EYE, order_id=OID, qty=1),
        ReserveStock(sku=SERUM, order_id=OID, qty=3),
    ]


def test_r_inv_2_the_reservations_of_a_placed_order_are_keyed_by_sku() -> None:
    event = OrderPlaced(
        order_id=OID,
        member_id="m-1",
        channel="live",
        lines=[OrderLine(sku=MASK, qty=2, unit_price=1990)],
        distributor_id=None,
        campaign_id=None,
        total=3980,
        placed_at=0,
    )
    assert [c.key for c in inventory_policy.react(event)] == [MASK]


def test_r_inv_2_a_rejected_order_releases_the_lines_that_were_reserved() -> None:
    event = OrderRejected(order_id=OID, reason="stock not available (eye-01: sold out)", release_skus=[MASK, SERUM])
    assert inventory_policy.react(event) == [
        ReleaseReservation(sku=MASK, order_id=OID, reason="order rejected"),
        ReleaseReservation(sku=SERUM, order_id=OID, reason="order rejected"),
    ]


def test_r_inv_2_a_rejected_order_with_nothing_reserved_releases_nothing() -> None:
    assert inventory_policy.react(OrderRejected(order_id=OID, reason="stock not available", release_skus=[])) == []


def test_r_inv_2_a_cancelled_order_releases_every_sku_with_the_reason() -> None:
    event = OrderCancelled(
        order_id=OID,
        reason="not paid within the payment hold time",
        release_skus=[MASK, EYE],
        refund_amount=0,
        member_id="m",
        distributor_id=None,
        campaign_id=None,
    )
    assert inventory_policy.react(event) == [
        ReleaseReservation(sku=MASK, order_id=OID, reason="order cancelled: not paid within the payment hold time"),
        ReleaseReservation(sku=EYE, order_id=OID, reason="order cancelled: not paid within the payment hold time"),
    ]
    assert all(isinstance(c, ReleaseReservation) and c.qty is None for c in inventory_policy.react(event))


def test_r_inv_2_a_shipped_order_commits_its_reservations() -> None:
    event = OrderShipped(order_id=OID, tracking="SF123", skus=[MASK, EYE], campaign_id=None)
    assert inventory_policy.react(event) == [CommitReservation(sku=MASK, order_id=OID), CommitReservation(sku=EYE, order_id=OID)]


@pytest.mark.parametrize(("reason", "grade"), [("no_reason", "A"), ("late", "A"), ("defect", "B"), ("damaged", "B")])
def test_r_inv_2_returned_goods_are_graded_by_the_refund_reason(reason: str, grade: str) -> None:
    event = OrderRefunded(
        order_id=OID,
        refund_id="rf-1",
        lines=[RefundedLine(sku=MASK, qty=2, reason=reason, amount=3980, goods_returned=True)],
        amount=3980,
        fully_refunded=False,
        member_id="m",
        distributor_id=None,
        campaign_id=None,
    )
    assert inventory_policy.react(event) == [ReturnStock(sku=MASK, order_id=OID, qty=2, grade=grade)]


def test_r_inv_2_a_refund_before_shipping_releases_only_the_refunded_units() -> None:
    event = OrderRefunded(
        order_id=OID,
        refund_id="rf-1",
        lines=[RefundedLine(sku=MASK, qty=1, reason="no_reason", amount=1990, goods_returned=False)],
        amount=1990,
        fully_refunded=False,
        member_id="m",
        distributor_id=None,
        campaign_id=None,
    )
    assert inventory_policy.react(event) == [ReleaseReservation(sku=MASK, order_id=OID, reason="order refunded", qty=1)]


def test_r_x_3_one_refund_event_cascades_to_every_line() -> None:
    event = OrderRefunded(
        order_id=OID,
        refund_id="rf-1",
        lines=[
            RefundedLine(sku=MASK, qty=2, reason="defect", amount=3980, goods_returned=True),
            RefundedLine(sku=EYE, qty=1, reason="no_reason", amount=500, goods_returned=True),
        ],
        amount=4480,
        fully_refunded=True,
        member_id="m",
        distributor_id=None,
        campaign_id=None,
    )
    assert inventory_policy.react(event) == [
        ReturnStock(sku=MASK, order_id=OID, qty=2, grade="B"),
        ReturnStock(sku=EYE, order_id=OID, qty=1, grade="A"),
    ]


@pytest.mark.parametrize(
    "event",
    [
        OrderConfirmed(order_id=OID, pay_by=1, total=100, lines=[]),
        OrderPaid(
            order_id=OID, amount=100, payment_ref="p", paid_at=1, member_id="m", distributor_id=None, campaign_id=None, lines=[]
        ),
        OrderDelivered(order_id=OID, delivered_at=1, return_window_ends=2),
        OrderCompleted(order_id=OID, completed_at=3, member_id="m", distributor_id=None, campaign_id=None),
        OrderCommandRejected(order_id=OID, command="PayOrder", reason="no"),
        StockReserved(sku=MASK, order_id=OID, qty=1, allocations=[Allocation(warehouse="wh", qty=1)]),
        ClockTicked(clock_id="clock", time=1),
    ],
)
def test_inventory_policy_ignores_events_that_ask_nothing_of_stock(event: Message) -> None:
    assert inventory_policy.react(event) == []


# --- order policy: inventory answers and ticks → order commands ------------------------------------


def test_r_ord_2_a_stock_reservation_is_recorded_on_the_order() -> None:
    event = StockReserved(
        sku=MASK,
        order_id=OID,
        qty=2,
        allocations=[Allocation(warehouse="wh-north", qty=1), Allocation(warehouse="wh-south", qty=1)],
    )
    (cmd,) = order_policy.react(event)
    assert cmd == RecordLineReservation(order_id=OID, sku=MASK, reserved=True, reason="")
    assert cmd.key == OID, "the answer goes back to the order's partition"


def test_r_ord_2_a_rejected_reservation_is_recorded_with_its_reason() -> None:
    event = ReservationRejected(sku=MASK, order_id=OID, qty=5, available=3, reason="only 3 available, 5 requested")
    assert order_policy.react(event) == [
        RecordLineReservation(order_id=OID, sku=MASK, reserved=False, reason="only 3 available, 5 requested")
    ]


def test_r_ord_2_a_clock_tick_checks_the_timers_of_every_partition() -> None:
    (cmd,) = order_policy.react(ClockTicked(clock_id="clock", time=1_767_225_600_000))
    assert cmd == CheckOrderTimers(time=1_767_225_600_000)
    assert cmd.key == "", "an empty key: the router sends it to every partition"


@pytest.mark.parametrize(
    "event",
    [
        StockReceived(sku=MASK, warehouse="wh", qty=1, reference=""),
        LowStockAlertRaised(sku=MASK, available=1, threshold=50, crossing=1),
        OrderPlaced(
            order_id=OID,
            member_id="m",
            channel="live",
            lines=[OrderLine(sku=MASK, qty=1, unit_price=1)],
            distributor_id=None,
            campaign_id=None,
            total=1,
            placed_at=0,
        ),
        OrderShipped(order_id=OID, tracking="t", skus=[MASK], campaign_id=None),
    ],
)
def test_order_policy_ignores_everything_else(event: Message) -> None:
    assert order_policy.react(event) == []
