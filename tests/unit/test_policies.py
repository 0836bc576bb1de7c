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
    lines = [OrderLine(MASK, 2, 1990), OrderLine(EYE, 1, 500), OrderLine(SERUM, 3, 0)]
    event = OrderPlaced(OID, "m-1", "live", lines, "d-1", None, 4480, 0)
    assert inventory_policy.react(event) == [
        ReserveStock(MASK, OID, 2),
        ReserveStock(EYE, OID, 1),
        ReserveStock(SERUM, OID, 3),
    ]


def test_r_inv_2_the_reservations_of_a_placed_order_are_keyed_by_sku() -> None:
    event = OrderPlaced(OID, "m-1", "live", [OrderLine(MASK, 2, 1990)], None, None, 3980, 0)
    assert [c.key for c in inventory_policy.react(event)] == [MASK]


def test_r_inv_2_a_rejected_order_releases_the_lines_that_were_reserved() -> None:
    event = OrderRejected(OID, "stock not available (eye-01: sold out)", [MASK, SERUM])
    assert inventory_policy.react(event) == [
        ReleaseReservation(MASK, OID, "order rejected"),
        ReleaseReservation(SERUM, OID, "order rejected"),
    ]


def test_r_inv_2_a_rejected_order_with_nothing_reserved_releases_nothing() -> None:
    assert inventory_policy.react(OrderRejected(OID, "stock not available", [])) == []


def test_r_inv_2_a_cancelled_order_releases_every_sku_with_the_reason() -> None:
    event = OrderCancelled(OID, "not paid within the payment hold time", [MASK, EYE], 0, "m", None, None)
    assert inventory_policy.react(event) == [
        ReleaseReservation(MASK, OID, "order cancelled: not paid within the payment hold time"),
        ReleaseReservation(EYE, OID, "order cancelled: not paid within the payment hold time"),
    ]
    assert all(isinstance(c, ReleaseReservation) and c.qty is None for c in inventory_policy.react(event))


def test_r_inv_2_a_shipped_order_commits_its_reservations() -> None:
    event = OrderShipped(OID, "SF123", [MASK, EYE], None)
    assert inventory_policy.react(event) == [CommitReservation(MASK, OID), CommitReservation(EYE, OID)]


@pytest.mark.parametrize(("reason", "grade"), [("no_reason", "A"), ("late", "A"), ("defect", "B"), ("damaged", "B")])
def test_r_inv_2_returned_goods_are_graded_by_the_refund_reason(reason: str, grade: str) -> None:
    event = OrderRefunded(OID, "rf-1", [RefundedLine(MASK, 2, reason, 3980, True)], 3980, False, "m", None, None)
    assert inventory_policy.react(event) == [ReturnStock(MASK, OID, 2, grade)]


def test_r_inv_2_a_refund_before_shipping_releases_only_the_refunded_units() -> None:
    event = OrderRefunded(OID, "rf-1", [RefundedLine(MASK, 1, "no_reason", 1990, False)], 1990, False, "m", None, None)
    assert inventory_policy.react(event) == [ReleaseReservation(MASK, OID, "order refunded", 1)]


def test_r_x_3_one_refund_event_cascades_to_every_line() -> None:
    event = OrderRefunded(
        OID,
        "rf-1",
        [RefundedLine(MASK, 2, "defect", 3980, True), RefundedLine(EYE, 1, "no_reason", 500, True)],
        4480,
        True,
        "m",
        None,
        None,
    )
    assert inventory_policy.react(event) == [ReturnStock(MASK, OID, 2, "B"), ReturnStock(EYE, OID, 1, "A")]


@pytest.mark.parametrize(
    "event",
    [
        OrderConfirmed(OID, 1, 100, []),
        OrderPaid(OID, 100, "p", 1, "m", None, None, []),
        OrderDelivered(OID, 1, 2),
        OrderCompleted(OID, 3, "m", None, None),
        OrderCommandRejected(OID, "PayOrder", "no"),
        StockReserved(MASK, OID, 1, [Allocation("wh", 1)]),
        ClockTicked("clock", 1),
    ],
)
def test_inventory_policy_ignores_events_that_ask_nothing_of_stock(event: Message) -> None:
    assert inventory_policy.react(event) == []


# --- order policy: inventory answers and ticks → order commands ------------------------------------


def test_r_ord_2_a_stock_reservation_is_recorded_on_the_order() -> None:
    event = StockReserved(MASK, OID, 2, [Allocation("wh-north", 1), Allocation("wh-south", 1)])
    (cmd,) = order_policy.react(event)
    assert cmd == RecordLineReservation(OID, MASK, True, "")
    assert cmd.key == OID, "the answer goes back to the order's partition"


def test_r_ord_2_a_rejected_reservation_is_recorded_with_its_reason() -> None:
    event = ReservationRejected(MASK, OID, 5, 3, "only 3 available, 5 requested")
    assert order_policy.react(event) == [RecordLineReservation(OID, MASK, False, "only 3 available, 5 requested")]


def test_r_ord_2_a_clock_tick_checks_the_timers_of_every_partition() -> None:
    (cmd,) = order_policy.react(ClockTicked("clock", 1_767_225_600_000))
    assert cmd == CheckOrderTimers(1_767_225_600_000)
    assert cmd.key == "", "an empty key: the router sends it to every partition"


@pytest.mark.parametrize(
    "event",
    [
        StockReceived(MASK, "wh", 1, ""),
        LowStockAlertRaised(MASK, 1, 50, 1),
        OrderPlaced(OID, "m", "live", [OrderLine(MASK, 1, 1)], None, None, 1, 0),
        OrderShipped(OID, "t", [MASK], None),
    ],
)
def test_order_policy_ignores_everything_else(event: Message) -> None:
    assert order_policy.react(event) == []
