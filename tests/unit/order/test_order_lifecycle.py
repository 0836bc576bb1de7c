"""Given/when/then on the order decider: every transition of R-ORD-1, R-ORD-2 and R-ORD-2a.

*Given* a history (the commands an order went through, each accepted by the real decider and folded
with ``evolve``), *when* one more command arrives at business time ``now``, *then* exactly these
events follow. A refused command must come back as one ``OrderCommandRejected`` whose reason says why,
and folding it must leave the state equal to a deep copy taken before (R-ORD-2: "changes nothing").
"""

from __future__ import annotations

import pytest

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.order.app import service
from services.order.domain import DAY_MS, MINUTE_MS, OrderBook, OrderConfig
from services.order.messages import (
    CHANNELS,
    REFUND_REASONS,
    CancelOrder,
    CheckOrderTimers,
    ConfirmDelivery,
    OrderCancelled,
    OrderCompleted,
    OrderConfirmed,
    OrderDelivered,
    OrderLine,
    OrderLineRejected,
    OrderLineReserved,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    PayOrder,
    PlaceOrder,
    RecordLineReservation,
    RefundedLine,
    RefundLine,
    RefundOrder,
    ShipOrder,
)

OID = "ord-1"
MASK, EYE = "mask-01", "eye-01"
LINES = [OrderLine(sku=MASK, qty=2, unit_price=1990), OrderLine(sku=EYE, qty=1, unit_price=500)]
TOTAL = 2 * 1990 + 500  # cents

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, ms
T_ANSWER = T0 + 1_000
HOLD_MS = 30 * MINUTE_MS  # R-ORD-2 default payment hold
PAY_BY = T_ANSWER + HOLD_MS
T_PAID = T0 + 10 * MINUTE_MS
T_SHIPPED = T0 + DAY_MS
T_DELIVERED = T0 + 2 * DAY_MS
WINDOW_MS = 7 * DAY_MS  # R-ORD-2 default no-reason window
WINDOW_ENDS = T_DELIVERED + WINDOW_MS


# --- given -------------------------------------------------------------------------------------


def place(order_id: str = OID, lines: list[OrderLine] | None = None, channel: str = "live") -> PlaceOrder:
    return PlaceOrder(order_id=order_id, member_id="member-1", channel=channel, lines=list(LINES if lines is None else lines))


def answer(sku: str, reserved: bool = True, reason: str = "", order_id: str = OID) -> RecordLineReservation:
    return RecordLineReservation(order_id=order_id, sku=sku, reserved=reserved, reason=reason)


HISTORY: dict[str, list[tuple[Message, int]]] = {}
HISTORY["placed"] = [(place(), T0)]
HISTORY["confirmed"] = [*HISTORY["placed"], (answer(MASK), T_ANSWER), (answer(EYE), T_ANSWER)]
HISTORY["rejected"] = [*HISTORY["placed"], (answer(MASK), T_ANSWER), (answer(EYE, False, "sold out"), T_ANSWER)]
HISTORY["paid"] = [*HISTORY["confirmed"], (PayOrder(order_id=OID, amount=TOTAL, payment_ref="pay-1"), T_PAID)]
HISTORY["shipped"] = [*HISTORY["paid"], (ShipOrder(order_id=OID, tracking="SF123"), T_SHIPPED)]
HISTORY["delivered"] = [*HISTORY["shipped"], (ConfirmDelivery(order_id=OID), T_DELIVERED)]
HISTORY["completed"] = [*HISTORY["delivered"], (CheckOrderTimers(time=WINDOW_ENDS), WINDOW_ENDS)]
HISTORY["cancelled"] = [*HISTORY["confirmed"], (CancelOrder(order_id=OID, reason="changed my mind"), T0 + MINUTE_MS)]
HISTORY["refunded"] = [
    *HISTORY["delivered"],
    (
        RefundOrder(
            order_id=OID,
            refund_id="rf-all",
            lines=[RefundLine(sku=MASK, qty=2, reason="no_reason"), RefundLine(sku=EYE, qty=1, reason="no_reason")],
        ),
        T0 + 3 * DAY_MS,
    ),
]
STATUSES = tuple(HISTORY)
ORDER = service()


def given(status: str, config: OrderConfig | None = None) -> Scenario[OrderBook]:
    """A partition where order OID went through the history of `status`, each command accepted."""
    sc = Scenario(service(config))
    for cmd, now in HISTORY[status]:
        sc.given(cmd, at=now)
    assert sc.state.orders[OID].status == status
    return sc


def status(sc: Scenario[OrderBook], order_id: str = OID) -> str:
    return sc.state.orders[order_id].status


# --- place (R-ORD-1) ---------------------------------------------------------------------------


def test_r_ord_1_a_valid_order_is_placed_with_its_total_in_cents() -> None:
    sc = Scenario(ORDER)
    cmd = PlaceOrder(
        order_id=OID, member_id="member-1", channel="live", lines=list(LINES), distributor_id="dist-7", campaign_id="camp-2"
    )
    expected = OrderPlaced(
        order_id=OID,
        member_id="member-1",
        channel="live",
        lines=LINES,
        distributor_id="dist-7",
        campaign_id="camp-2",
        total=TOTAL,
        placed_at=T0,
        awaiting=["presale"],
    )
    sc.when(cmd, T0).then(expected)
    order = sc.state.orders[OID]
    assert (order.status, order.total, order.placed_at, order.lines) == ("placed", TOTAL, T0, LINES)
    assert (order.distributor_id, order.campaign_id) == ("dist-7", "camp-2")


@pytest.mark.parametrize("channel", CHANNELS)
def test_r_ord_1_every_sales_channel_is_accepted(channel: str) -> None:
    events = Scenario(ORDER).decide(place(channel=channel), T0)
    assert [type(e) for e in events] == [OrderPlaced]


@pytest.mark.parametrize("channel", ["", "tv_shopping", "LIVE"])
def test_r_ord_1_an_unknown_channel_is_refused(channel: str) -> None:
    Scenario(ORDER).when(place(channel=channel), T0).refused("channel must be one of", "live")


def test_r_ord_1_an_order_without_lines_is_refused() -> None:
    Scenario(ORDER).when(place(lines=[]), T0).refused("at least one line")


@pytest.mark.parametrize("qty", [0, -1])
def test_r_ord_1_a_line_quantity_must_be_positive(qty: int) -> None:
    Scenario(ORDER).when(place(lines=[OrderLine(sku=MASK, qty=qty, unit_price=1990)]), T0).refused(MASK, "qty must be a positive")


def test_r_ord_1_a_negative_unit_price_is_refused() -> None:
    Scenario(ORDER).when(place(lines=[OrderLine(sku=MASK, qty=1, unit_price=-1)]), T0).refused(MASK, "unit_price")


def test_r_ord_1_the_same_sku_on_two_lines_is_refused() -> None:
    lines = [OrderLine(sku=MASK, qty=1, unit_price=1990), OrderLine(sku=MASK, qty=2, unit_price=1990)]
    Scenario(ORDER).when(place(lines=lines), T0).refused(MASK, "two lines")


@pytest.mark.parametrize("existing", STATUSES)
def test_r_ord_1_an_existing_order_id_is_refused(existing: str) -> None:
    given(existing).when(place(), T0 + 5 * DAY_MS).refused(OID, "already exists")


# --- reservation answers (R-ORD-2: placed → confirmed | rejected) --------------------------------


def test_r_ord_2_one_answer_of_two_records_the_line_and_waits() -> None:
    sc = given("placed")
    sc.when(answer(MASK), T_ANSWER).then(OrderLineReserved(order_id=OID, sku=MASK))
    assert status(sc) == "placed"
    assert sc.state.pay_deadlines == {}


def test_r_ord_2_all_lines_reserved_confirms_with_pay_by_now_plus_30_minutes() -> None:
    sc = given("placed")
    sc.when(answer(MASK), T0 + 500).accepted()
    sc.when(answer(EYE), T_ANSWER).then(
        OrderLineReserved(order_id=OID, sku=EYE), OrderConfirmed(order_id=OID, pay_by=PAY_BY, total=TOTAL, lines=LINES)
    )
    assert status(sc) == "confirmed"
    assert sc.state.orders[OID].pay_by == T_ANSWER + 30 * 60_000
    assert sc.state.pay_deadlines == {OID: PAY_BY}


def test_r_ord_2_the_payment_hold_is_configurable() -> None:
    sc = given("placed", OrderConfig(payment_hold_ms=5 * MINUTE_MS))
    sc.when(answer(MASK), T_ANSWER).accepted()
    events = sc.when(answer(EYE), T_ANSWER).accepted().events
    assert events[-1] == OrderConfirmed(order_id=OID, pay_by=T_ANSWER + 5 * MINUTE_MS, total=TOTAL, lines=LINES)


def test_r_ord_2_a_rejected_line_rejects_the_order_and_releases_the_reserved_lines() -> None:
    sc = given("placed")
    sc.when(answer(MASK), T_ANSWER).accepted()
    sc.when(answer(EYE, False, "only 0 available, 1 requested"), T_ANSWER).then(
        OrderLineRejected(order_id=OID, sku=EYE, reason="only 0 available, 1 requested"),
        OrderRejected(order_id=OID, reason=f"stock not available ({EYE}: only 0 available, 1 requested)", release_skus=[MASK]),
    )
    assert status(sc) == "rejected"
    assert sc.state.pay_deadlines == {}


def test_r_ord_2_a_rejection_waits_for_every_answer_before_rejecting() -> None:
    sc = given("placed")
    sc.when(answer(MASK, False, "sold out"), T_ANSWER).then(OrderLineRejected(order_id=OID, sku=MASK, reason="sold out"))
    assert status(sc) == "placed"
    events = sc.when(answer(EYE), T_ANSWER).accepted().events
    assert events == [
        OrderLineReserved(order_id=OID, sku=EYE),
        OrderRejected(order_id=OID, reason=f"stock not available ({MASK}: sold out)", release_skus=[EYE]),
    ]


def test_r_ord_2_every_line_rejected_releases_nothing() -> None:
    sc = given("placed")
    sc.when(answer(MASK, False, "sold out"), T_ANSWER).accepted()
    events = sc.when(answer(EYE, False, "unknown sku eye-01"), T_ANSWER).accepted().events
    assert isinstance(events[-1], OrderRejected)
    assert events[-1].release_skus == []
    assert MASK in events[-1].reason and EYE in events[-1].reason


def test_r_ord_2_a_repeated_answer_is_ignored() -> None:
    sc = given("placed")
    sc.when(answer(MASK), T_ANSWER).accepted()
    sc.when(answer(MASK), T_ANSWER).then()
    sc.when(answer(MASK, False, "sold out"), T_ANSWER).then()
    assert sc.state.orders[OID].answers == {MASK: True}


@pytest.mark.parametrize("late_status", ["confirmed", "rejected", "cancelled", "paid", "shipped"])
def test_r_ord_2_a_late_answer_after_the_saga_moved_on_produces_nothing(late_status: str) -> None:
    sc = given(late_status)
    for cmd in (answer(MASK), answer(EYE, False, "sold out"), answer("other-sku")):
        sc.when(cmd, T0 + 2 * DAY_MS).then()


def test_r_ord_2_an_answer_for_a_sku_not_in_the_order_is_ignored() -> None:
    sc = given("placed")
    sc.when(answer("not-ordered"), T_ANSWER).then()


def test_r_ord_2_an_answer_for_an_unknown_order_is_refused() -> None:
    Scenario(ORDER).when(answer(MASK, order_id="nope"), T0).refused("unknown order nope")


# --- pay (R-ORD-2: confirmed → paid) ------------------------------------------------------------


def test_r_ord_2_a_confirmed_order_paid_the_exact_total_is_paid() -> None:
    sc = given("confirmed")
    sc.when(PayOrder(order_id=OID, amount=TOTAL, payment_ref="pay-1"), T_PAID).then(
        OrderPaid(
            order_id=OID,
            amount=TOTAL,
            payment_ref="pay-1",
            paid_at=T_PAID,
            member_id="member-1",
            distributor_id=None,
            campaign_id=None,
            lines=LINES,
        )
    )
    assert status(sc) == "paid"
    assert sc.state.orders[OID].paid == TOTAL
    assert sc.state.pay_deadlines == {}, "a paid order is no longer on the hold timer"


@pytest.mark.parametrize("st", [s for s in STATUSES if s != "confirmed"])
def test_r_ord_2_only_a_confirmed_order_can_be_paid(st: str) -> None:
    given(st).when(PayOrder(order_id=OID, amount=TOTAL, payment_ref="pay-x"), T_PAID).refused(
        f"order is {st}", "only a confirmed order"
    )


@pytest.mark.parametrize("amount", [0, TOTAL - 1, TOTAL + 1])
def test_r_ord_2_a_payment_must_equal_the_total(amount: int) -> None:
    given("confirmed").when(PayOrder(order_id=OID, amount=amount, payment_ref="pay-x"), T_PAID).refused(str(amount), str(TOTAL))


def test_r_ord_2_payment_one_ms_before_the_hold_ends_is_accepted() -> None:
    events = given("confirmed").decide(PayOrder(order_id=OID, amount=TOTAL, payment_ref="pay-1"), PAY_BY - 1)
    assert events == [
        OrderPaid(
            order_id=OID,
            amount=TOTAL,
            payment_ref="pay-1",
            paid_at=PAY_BY - 1,
            member_id="member-1",
            distributor_id=None,
            campaign_id=None,
            lines=LINES,
        )
    ]


@pytest.mark.parametrize("late", [0, 1, DAY_MS])
def test_r_ord_2_payment_at_or_after_the_hold_expiry_is_refused(late: int) -> None:
    given("confirmed").when(PayOrder(order_id=OID, amount=TOTAL, payment_ref="pay-1"), PAY_BY + late).refused(
        "payment hold expired"
    )


def test_r_ord_2_payment_for_an_unknown_order_is_refused() -> None:
    Scenario(ORDER).when(PayOrder(order_id="ghost", amount=100, payment_ref="p"), T0).refused("unknown order ghost")


# --- ship (paid → shipped) ----------------------------------------------------------------------


def test_r_ord_2_a_paid_order_ships_every_line() -> None:
    sc = given("paid")
    sc.when(ShipOrder(order_id=OID, tracking="SF123"), T_SHIPPED).then(
        OrderShipped(order_id=OID, tracking="SF123", skus=[MASK, EYE], campaign_id=None)
    )
    assert status(sc) == "shipped"
    assert sc.state.orders[OID].shipped


def test_r_ord_2a_a_line_refunded_in_full_before_shipping_is_not_shipped() -> None:
    sc = given("paid")
    sc.when(
        RefundOrder(order_id=OID, refund_id="rf-1", lines=[RefundLine(sku=EYE, qty=1, reason="no_reason")]), T_PAID + 1
    ).accepted()
    sc.when(ShipOrder(order_id=OID, tracking="SF1"), T_SHIPPED).then(
        OrderShipped(order_id=OID, tracking="SF1", skus=[MASK], campaign_id=None)
    )


@pytest.mark.parametrize("st", [s for s in STATUSES if s != "paid"])
def test_r_ord_2_only_a_paid_order_can_be_shipped(st: str) -> None:
    given(st).when(ShipOrder(order_id=OID, tracking="SF9"), T_SHIPPED).refused(f"order is {st}", "only a paid order")


# --- deliver (shipped → delivered; the 7-day window starts) --------------------------------------


def test_r_ord_2_a_shipped_order_is_delivered_and_the_7_day_window_opens() -> None:
    sc = given("shipped")
    expected = OrderDelivered(order_id=OID, delivered_at=T_DELIVERED, return_window_ends=T_DELIVERED + 7 * 24 * 3_600_000)
    sc.when(ConfirmDelivery(order_id=OID), T_DELIVERED).then(expected)
    assert status(sc) == "delivered"
    assert sc.state.return_windows == {OID: WINDOW_ENDS}


@pytest.mark.parametrize("st", [s for s in STATUSES if s != "shipped"])
def test_r_ord_2_only_a_shipped_order_can_be_delivered(st: str) -> None:
    given(st).when(ConfirmDelivery(order_id=OID), T_DELIVERED).refused(f"order is {st}", "only a shipped order")


# --- cancel (allowed before shipping) ------------------------------------------------------------


@pytest.mark.parametrize("st", ["placed", "confirmed"])
def test_r_ord_2_an_unpaid_order_is_cancelled_and_its_stock_released(st: str) -> None:
    sc = given(st)
    expected = OrderCancelled(
        order_id=OID,
        reason="changed my mind",
        release_skus=[MASK, EYE],
        refund_amount=0,
        member_id="member-1",
        distributor_id=None,
        campaign_id=None,
    )
    sc.when(CancelOrder(order_id=OID, reason="changed my mind"), T0 + MINUTE_MS).then(expected)
    assert status(sc) == "cancelled"
    assert sc.state.pay_deadlines == {}
    assert sc.decide(CheckOrderTimers(time=PAY_BY + DAY_MS), PAY_BY + DAY_MS) == []


def test_r_ord_2_a_paid_order_is_cancelled_with_a_refund_of_what_was_paid() -> None:
    sc = given("paid")
    expected = OrderCancelled(
        order_id=OID,
        reason="out of town",
        release_skus=[MASK, EYE],
        refund_amount=TOTAL,
        member_id="member-1",
        distributor_id=None,
        campaign_id=None,
    )
    sc.when(CancelOrder(order_id=OID, reason="out of town"), T_PAID + 1).then(expected)
    assert status(sc) == "cancelled"


def test_r_ord_2a_cancelling_after_a_partial_refund_refunds_only_the_rest() -> None:
    sc = given("paid")
    sc.when(
        RefundOrder(order_id=OID, refund_id="rf-1", lines=[RefundLine(sku=MASK, qty=1, reason="no_reason")]), T_PAID + 1
    ).accepted()
    events = sc.when(CancelOrder(order_id=OID, reason="never mind"), T_PAID + 2).accepted().events
    assert events == [
        OrderCancelled(
            order_id=OID,
            reason="never mind",
            release_skus=[MASK, EYE],
            refund_amount=TOTAL - 1990,
            member_id="member-1",
            distributor_id=None,
            campaign_id=None,
        )
    ]


@pytest.mark.parametrize("st", ["shipped", "delivered", "completed"])
def test_r_ord_2_cancel_after_shipping_is_refused_and_points_to_a_refund(st: str) -> None:
    given(st).when(CancelOrder(order_id=OID, reason="too late"), T0 + 9 * DAY_MS).refused(f"order is {st}", "ask for a refund")


@pytest.mark.parametrize("st", ["cancelled", "rejected", "refunded"])
def test_r_ord_2_cancel_of_a_closed_order_is_refused(st: str) -> None:
    given(st).when(CancelOrder(order_id=OID, reason="again"), T0 + 3 * DAY_MS).refused(f"order is {st}", "nothing to cancel")


def test_r_ord_2_cancel_of_an_unknown_order_is_refused() -> None:
    Scenario(ORDER).when(CancelOrder(order_id="ghost", reason="x"), T0).refused("unknown order ghost")


# --- refunds (R-ORD-2, R-ORD-2a) -----------------------------------------------------------------


def refund(refund_id: str, *lines: tuple[str, int, str]) -> RefundOrder:
    return RefundOrder(
        order_id=OID, refund_id=refund_id, lines=[RefundLine(sku=sku, qty=qty, reason=why) for sku, qty, why in lines]
    )


def test_r_ord_2a_a_partial_refund_after_delivery_pays_back_the_line_and_takes_the_goods_back() -> None:
    sc = given("delivered")
    now = T_DELIVERED + DAY_MS
    lines = [RefundedLine(sku=MASK, qty=1, reason="no_reason", amount=1990, goods_returned=True)]
    expected = OrderRefunded(
        order_id=OID,
        refund_id="rf-1",
        lines=lines,
        amount=1990,
        fully_refunded=False,
        member_id="member-1",
        distributor_id=None,
        campaign_id=None,
        paid_total=TOTAL,
        refunded_before=0,
    )
    sc.when(refund("rf-1", (MASK, 1, "no_reason")), now).then(expected)
    order = sc.state.orders[OID]
    assert (order.status, order.refunded_qty, order.refunded_amount) == ("delivered", {MASK: 1}, 1990)
    assert sc.state.return_windows == {OID: WINDOW_ENDS}, "a partial refund keeps the window open"


def test_r_ord_2a_a_refund_before_shipping_returns_no_goods() -> None:
    sc = given("paid")
    lines = [RefundedLine(sku=EYE, qty=1, reason="late", amount=500, goods_returned=False)]
    expected = OrderRefunded(
        order_id=OID,
        refund_id="rf-1",
        lines=lines,
        amount=500,
        fully_refunded=False,
        member_id="member-1",
        distributor_id=None,
        campaign_id=None,
        paid_total=TOTAL,
        refunded_before=0,
    )
    sc.when(refund("rf-1", (EYE, 1, "late")), T_PAID + 1).then(expected)
    assert status(sc) == "paid"


@pytest.mark.parametrize("st", ["paid", "shipped", "delivered"])
def test_r_ord_2_a_whole_order_refund_is_fully_refunded_and_the_status_becomes_refunded(st: str) -> None:
    sc = given(st)
    cmd = refund("rf-all", (MASK, 2, "damaged"), (EYE, 1, "no_reason"))
    events = sc.when(cmd, T0 + 3 * DAY_MS).accepted().events
    assert len(events) == 1 and isinstance(events[0], OrderRefunded)
    assert events[0].amount == TOTAL and events[0].fully_refunded
    assert status(sc) == "refunded"
    assert sc.state.return_windows == {}, "nothing is left to complete"


def test_r_ord_2a_refunds_that_add_up_to_the_whole_order_make_it_refunded() -> None:
    sc = given("delivered")
    now = T_DELIVERED + DAY_MS
    first = sc.when(refund("rf-1", (MASK, 1, "no_reason")), now).accepted().events
    second = sc.when(refund("rf-2", (MASK, 1, "defect"), (EYE, 1, "late")), now).accepted().events
    assert isinstance(first[0], OrderRefunded) and isinstance(second[0], OrderRefunded)
    assert not first[0].fully_refunded and second[0].fully_refunded
    assert first[0].amount + second[0].amount == TOTAL
    # the order's figures ride on each refund (loyalty takes back an exact share from them, R-LOY-2)
    assert (first[0].paid_total, first[0].refunded_before) == (TOTAL, 0)
    assert (second[0].paid_total, second[0].refunded_before) == (TOTAL, first[0].amount)
    assert status(sc) == "refunded"


@pytest.mark.parametrize("reason", REFUND_REASONS)
def test_r_ord_2a_every_listed_reason_is_accepted_inside_the_window(reason: str) -> None:
    events = given("delivered").decide(refund("rf-1", (EYE, 1, reason)), T_DELIVERED + 1)
    lines = [RefundedLine(sku=EYE, qty=1, reason=reason, amount=500, goods_returned=True)]
    assert events == [
        OrderRefunded(
            order_id=OID,
            refund_id="rf-1",
            lines=lines,
            amount=500,
            fully_refunded=False,
            member_id="member-1",
            distributor_id=None,
            campaign_id=None,
            paid_total=TOTAL,
            refunded_before=0,
        )
    ]


@pytest.mark.parametrize("reason", ["", "changed_mind", "NO_REASON"])
def test_r_ord_2a_a_reason_outside_the_list_is_refused(reason: str) -> None:
    given("delivered").when(refund("rf-1", (EYE, 1, reason)), T_DELIVERED + 1).refused(EYE, "reason must be one of")


def test_r_ord_2a_a_refund_never_exceeds_the_quantity_paid_for_the_line() -> None:
    given("delivered").when(refund("rf-1", (MASK, 3, "defect")), T_DELIVERED + 1).refused(MASK, "3 units asked back", "only 2")


def test_r_ord_2a_refunds_of_one_line_never_add_up_to_more_than_was_paid() -> None:
    sc = given("delivered")
    sc.when(refund("rf-1", (MASK, 2, "defect")), T_DELIVERED + 1).accepted()
    sc.when(refund("rf-2", (MASK, 1, "defect")), T_DELIVERED + 2).refused(MASK, "only 0 paid and not refunded")


@pytest.mark.parametrize("qty", [0, -1])
def test_r_ord_2a_a_refund_quantity_must_be_positive(qty: int) -> None:
    given("delivered").when(refund("rf-1", (MASK, qty, "defect")), T_DELIVERED + 1).refused("qty must be positive")


def test_r_ord_2a_a_refund_of_a_sku_not_in_the_order_is_refused() -> None:
    given("delivered").when(refund("rf-1", ("lipstick", 1, "defect")), T_DELIVERED + 1).refused("not in the order")


def test_r_ord_2a_a_refund_naming_a_line_twice_is_refused() -> None:
    cmd = refund("rf-1", (MASK, 1, "defect"), (MASK, 1, "no_reason"))
    given("delivered").when(cmd, T_DELIVERED + 1).refused(MASK, "appears twice")


def test_r_ord_2a_a_refund_without_lines_is_refused() -> None:
    given("delivered").when(refund("rf-1"), T_DELIVERED + 1).refused("at least one line")


def test_r_ord_2a_a_refund_id_cannot_be_reused() -> None:
    sc = given("delivered")
    sc.when(refund("rf-1", (MASK, 1, "no_reason")), T_DELIVERED + 1).accepted()
    sc.when(refund("rf-1", (EYE, 1, "defect")), T_DELIVERED + 2).refused("rf-1", "already made")


@pytest.mark.parametrize("st", ["placed", "confirmed", "rejected", "cancelled", "refunded"])
def test_r_ord_2_only_a_paid_order_can_be_refunded(st: str) -> None:
    given(st).when(refund("rf-x", (MASK, 1, "defect")), T0 + 3 * DAY_MS).refused(f"order is {st}")


def test_r_ord_2_a_no_reason_refund_is_accepted_until_the_last_ms_of_the_window() -> None:
    events = given("delivered").decide(refund("rf-1", (MASK, 1, "no_reason")), WINDOW_ENDS - 1)
    assert [type(e) for e in events] == [OrderRefunded]


@pytest.mark.parametrize("reason", ["no_reason", "damaged", "late"])
@pytest.mark.parametrize("late", [0, 1, DAY_MS])
def test_r_ord_2_the_no_reason_window_closes_7_days_after_delivery(reason: str, late: int) -> None:
    """The window ends where the completion timer fires (`return_window_ends`, exclusive), like the pay hold."""
    given("delivered").when(refund("rf-1", (MASK, 1, reason)), WINDOW_ENDS + late).refused("window closed")


@pytest.mark.parametrize("reason", ["no_reason", "late"])
def test_r_ord_2_a_completed_order_takes_no_more_no_reason_refunds(reason: str) -> None:
    given("completed").when(refund("rf-1", (EYE, 1, reason)), WINDOW_ENDS + DAY_MS).refused("only a defect")


def test_r_ord_2_an_order_completed_at_the_window_end_refuses_a_no_reason_refund_at_that_instant() -> None:
    """The completion timer and the refund must agree on when the window closes (both at `ends`)."""
    sc = given("delivered")
    sc.when(CheckOrderTimers(time=WINDOW_ENDS), WINDOW_ENDS).accepted()
    assert status(sc) == "completed"
    sc.when(refund("rf-1", (MASK, 1, "no_reason")), WINDOW_ENDS).refused("window closed")


@pytest.mark.parametrize("st", ["delivered", "completed"])
def test_r_ord_2_a_defect_is_refunded_at_any_time_even_after_completion(st: str) -> None:
    now = WINDOW_ENDS + 365 * DAY_MS
    sc = given(st)
    lines = [RefundedLine(sku=MASK, qty=1, reason="defect", amount=1990, goods_returned=True)]
    expected = OrderRefunded(
        order_id=OID,
        refund_id="rf-1",
        lines=lines,
        amount=1990,
        fully_refunded=False,
        member_id="member-1",
        distributor_id=None,
        campaign_id=None,
        paid_total=TOTAL,
        refunded_before=0,
    )
    sc.when(refund("rf-1", (MASK, 1, "defect")), now).then(expected)
    assert status(sc) == st
    last = sc.when(refund("rf-2", (MASK, 1, "defect"), (EYE, 1, "defect")), now).accepted().events
    assert status(sc) == "refunded"
    assert isinstance(last[0], OrderRefunded) and (last[0].paid_total, last[0].refunded_before) == (TOTAL, 1990)


def test_r_ord_2_a_refund_mixing_a_defect_and_a_late_no_reason_line_is_refused_whole() -> None:
    cmd = refund("rf-1", (MASK, 1, "defect"), (EYE, 1, "no_reason"))
    given("completed").when(cmd, WINDOW_ENDS + DAY_MS).refused(EYE, "window closed")


# --- timers (R-ORD-2: unpaid hold → cancelled; window end → completed) -----------------------------


def tick(sc: Scenario[OrderBook], time: int) -> list[Message]:
    """What a tick would decide (not folded)."""
    return sc.decide(CheckOrderTimers(time=time), time)


def test_r_ord_2_the_hold_timer_does_nothing_one_ms_before_the_deadline() -> None:
    assert tick(given("confirmed"), PAY_BY - 1) == []


@pytest.mark.parametrize("late", [0, 1, DAY_MS])
def test_r_ord_2_an_unpaid_confirmed_order_is_cancelled_from_the_deadline_on(late: int) -> None:
    sc = given("confirmed")
    expected = OrderCancelled(
        order_id=OID,
        reason="not paid within the payment hold time",
        release_skus=[MASK, EYE],
        refund_amount=0,
        member_id="member-1",
        distributor_id=None,
        campaign_id=None,
    )
    sc.when(CheckOrderTimers(time=PAY_BY + late), PAY_BY + late).then(expected)
    assert status(sc) == "cancelled"
    assert tick(sc, PAY_BY + 2 * DAY_MS) == [], "cancelled once, never again"


def test_r_ord_2_a_payment_refused_for_expiry_is_followed_by_the_cancellation() -> None:
    sc = given("confirmed")
    sc.when(PayOrder(order_id=OID, amount=TOTAL, payment_ref="pay-1"), PAY_BY).refused("hold expired")
    assert [type(e) for e in tick(sc, PAY_BY)] == [OrderCancelled]


@pytest.mark.parametrize("st", ["placed", "paid", "shipped", "rejected", "cancelled"])
def test_r_ord_2_the_hold_timer_ignores_orders_that_are_not_waiting_for_payment(st: str) -> None:
    assert tick(given(st), PAY_BY + DAY_MS) == []


def test_r_ord_2_the_window_timer_does_nothing_one_ms_before_the_window_ends() -> None:
    assert tick(given("delivered"), WINDOW_ENDS - 1) == []


@pytest.mark.parametrize("late", [0, 1, DAY_MS])
def test_r_ord_2_a_delivered_order_completes_when_the_window_ends(late: int) -> None:
    sc = given("delivered")
    sc.when(CheckOrderTimers(time=WINDOW_ENDS + late), WINDOW_ENDS + late).then(
        OrderCompleted(order_id=OID, completed_at=WINDOW_ENDS + late, member_id="member-1", distributor_id=None, campaign_id=None)
    )
    assert status(sc) == "completed"
    assert sc.state.return_windows == {}
    assert tick(sc, WINDOW_ENDS + 2 * DAY_MS) == [], "completed once, never again"


def test_r_ord_2_a_partly_refunded_order_still_completes() -> None:
    sc = given("delivered")
    sc.when(refund("rf-1", (MASK, 1, "no_reason")), T_DELIVERED + 1).accepted()
    assert tick(sc, WINDOW_ENDS) == [
        OrderCompleted(order_id=OID, completed_at=WINDOW_ENDS, member_id="member-1", distributor_id=None, campaign_id=None)
    ]


def test_r_ord_2_a_fully_refunded_order_never_completes() -> None:
    assert tick(given("refunded"), WINDOW_ENDS + DAY_MS) == []


def test_r_ord_2_one_tick_handles_every_due_order_of_the_partition_in_id_order() -> None:
    sc = Scenario(ORDER)
    for oid in ("b", "a", "c"):
        sc.when(place(oid, [OrderLine(sku=MASK, qty=1, unit_price=100)]), T0).accepted()
        sc.when(answer(MASK, order_id=oid), T_ANSWER).accepted()
    sc.when(PayOrder(order_id="c", amount=100, payment_ref="p"), T_PAID).accepted()
    events = tick(sc, PAY_BY)
    assert [(type(e), e.key) for e in events] == [(OrderCancelled, "a"), (OrderCancelled, "b")]


def test_r_ord_2_a_tick_on_an_empty_partition_is_silent() -> None:
    assert tick(Scenario(ORDER), T0) == []


def test_an_event_sent_as_a_command_is_refused() -> None:
    sc = given("confirmed")
    sc.when(
        OrderPaid(
            order_id=OID,
            amount=TOTAL,
            payment_ref="pay-1",
            paid_at=T_PAID,
            member_id="member-1",
            distributor_id=None,
            campaign_id=None,
            lines=LINES,
        ),
        T_PAID,
    ).refused("OrderPaid is not an order command")
